// rmig: live-migrate QEMU guests over rmig's own channels.
//   rmig receive   on the destination host, next to a QEMU started with -incoming defer
//   rmig migrate   on the source host, next to the running QEMU
//   rmig qmp       run one QMP command (handy in scripts)
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/exit_codes.hpp"
#include "cli/profile.hpp"
#include "cli/security_options.hpp"
#include "cli/topo_command.hpp"
#include "cli/progress_display.hpp"
#include "common/log.hpp"
#include "common/units.hpp"
#include "qemu-plugin/migrate_source.hpp"
#include "qemu-plugin/qmp_client.hpp"
#include "qemu-plugin/receive_dest.hpp"

using namespace rmig;
using rmig::cli::Args;
using rmig::cli::UsageError;

namespace {

const char* kUsage = R"(usage: rmig <command> [options]

Live-migrates a QEMU/KVM guest through rmig's own channels (channel mode):
QEMU migrates to a UNIX socket on the source host, rmig carries the main and
every multifd stream across the link, and hands them in order to the
destination QEMU. Both QEMUs are driven over QMP.

commands:
  receive   run on the destination host, beside a QEMU started with -incoming defer
  migrate   run on the source host, beside the running QEMU
  qmp       run one QMP command and print its JSON result
  topo      show NUMA nodes, the NIC's node and where workers would run
  version   print the version
  help CMD  show the options of CMD

two hosts:
  both$ openssl rand -hex 32 > key.psk   # once, then copy it to the other host
  dst$ rmig receive --qmp /run/vm1/qmp.sock --listen tcp:0.0.0.0:7070 --psk-file key.psk
  src$ rmig migrate --qmp /run/vm1/qmp.sock --to tcp:dst-host:7070 --multifd 4 --psk-file key.psk

exit codes: 0 done, 1 migration failed (the source guest keeps running),
2 bad arguments, 3 refused by the pre-migration checks (nothing was sent),
4 failed and the source guest could not be confirmed running.
)";

const char* kMigrateUsage = R"(usage: rmig migrate --qmp PATH --to tcp:HOST:PORT [options]

  --qmp PATH             the source QEMU's QMP UNIX socket
  --to URI               where `rmig receive` listens: tcp:HOST:PORT, or
                         rdma:ADDR:PORT (ADDR on the peer's RoCE/IPoIB interface)
  --multifd N            use QEMU multifd with N channels (rmig carries N+1
                         streams); 0 (default) uses the main stream only
  --max-bandwidth RATE   QEMU's bandwidth cap in bytes/s (K/M/G suffixes), default 10G
  --downtime-limit MS    QEMU's downtime limit, default 300
  --no-resume            leave the destination guest paused when done
  --timeout S            give up (and cancel) after S seconds, default 600
  --stall-timeout S      cancel when no byte moves on the link for S seconds, default 30
  --progress MODE        auto (default), tty, line or none
  --json FILE            write a JSON report to FILE ('-' for stdout)
  --chunk SIZE           largest data frame, default 1M
  --socket-buffer SIZE   TCP send/receive buffer, default 8M
  --relay-dir DIR        where the relay's UNIX socket is made, default /tmp
  --rdma-slots N         rdma: ring slots per channel direction, default 16
  --rdma-slot-size SIZE  rdma: bytes per ring slot, default 256K
  --dpdk-eal ARGS        dpdk: EAL arguments (default $RMIG_DPDK_EAL_ARGS, else
                         no-hugepage defaults; docs/dpdk-protocol.md)
  --dpdk-window N        dpdk: segments in flight per channel (default from BDP)
  --dpdk-gbps G, --dpdk-rtt-us US  dpdk: link rate and RTT for the BDP window
  --dpdk-mtu N           dpdk: frame MTU (9000: jumbo frames)
  --dpdk-queues N        dpdk: rx/tx queue pairs, one poller each (one per channel; default 1)
  --profile NAME|FILE    a hw-configs profile (e.g. dc-25g, wan-100ms); options
                         given on the command line win
  --verbose | --quiet    more or less logging on stderr
)";

const char* kReceiveUsage = R"(usage: rmig receive --qmp PATH --listen tcp:ADDR:PORT [options]

  --qmp PATH             the destination QEMU's QMP socket (QEMU started with
                         -incoming defer; add -S to keep the guest paused until rmig
                         confirms it arrived)
  --listen URI           where to wait for `rmig migrate`: tcp:ADDR:PORT or
                         rdma:ADDR:PORT (port 0: any free port)
  --address-file FILE    write the bound address there once listening
  --timeout S            give up after S seconds in all, default 600
  --stall-timeout S      give up when nothing arrives from the source for S seconds, default 30
  --incoming-dir DIR     where QEMU's incoming UNIX socket is made, default /tmp
  --json FILE            write a JSON report to FILE ('-' for stdout)
  --chunk SIZE           largest data frame, default 1M
  --socket-buffer SIZE   TCP send/receive buffer, default 8M
  --rdma-slots N         rdma: ring slots per channel direction, default 16
  --rdma-slot-size SIZE  rdma: bytes per ring slot, default 256K
  --dpdk-eal, --dpdk-window, --dpdk-gbps, --dpdk-rtt-us, --dpdk-mtu, --dpdk-queues  as for migrate
  --profile NAME|FILE    a hw-configs profile (its chunk, socket-buffer, timeout
                         and rdma settings apply here)
  --verbose | --quiet    more or less logging on stderr
)";

const char* kQmpUsage = R"(usage: rmig qmp --qmp PATH COMMAND [ARGUMENTS-JSON]

  e.g. rmig qmp --qmp /run/vm1/qmp.sock query-status
       rmig qmp --qmp /run/vm1/qmp.sock pmemsave '{"val":0,"size":1048576,"filename":"/tmp/m"}'
)";

void write_json(const std::string& where, const nlohmann::json& j) {
    if (where == "-") {
        std::printf("%s\n", j.dump(2).c_str());
        return;
    }
    std::ofstream out(where);
    out << j.dump(2) << "\n";
    if (!out) throw Error(cat("cannot write the JSON report to ", where));
}

void set_logging(const Args& a, const std::string& prefix) {
    log::set_prefix(prefix);
    if (a.flag("verbose")) log::set_level(log::Level::debug);
    if (a.flag("quiet")) log::set_level(log::Level::warn);
}

transport::Options transport_options(const Args& a) {
    transport::Options o;
    o.socket_buffer_bytes =
        static_cast<int>(parse_size(a.get_or("socket-buffer", "8M"), "--socket-buffer"));
    o.rdma.ring_slots = static_cast<uint32_t>(a.number("rdma-slots", o.rdma.ring_slots));
    o.rdma.slot_bytes = static_cast<uint32_t>(
        parse_size(a.get_or("rdma-slot-size", std::to_string(o.rdma.slot_bytes)), "--rdma-slot-size"));
    if (o.rdma.ring_slots < 2 || o.rdma.ring_slots > 4096)
        throw UsageError("--rdma-slots must be 2..4096");
    if (o.rdma.slot_bytes < 4096 || o.rdma.slot_bytes > (64u << 20))
        throw UsageError("--rdma-slot-size must be 4K..64M");
    o.dpdk.eal_args = a.get_or("dpdk-eal", "");
    o.dpdk.window_segments = static_cast<uint32_t>(a.number("dpdk-window", 0));
    o.dpdk.link_gbps = static_cast<double>(a.number("dpdk-gbps", 10));
    o.dpdk.rtt_us = static_cast<double>(a.number("dpdk-rtt-us", 500));
    o.dpdk.mtu = static_cast<uint32_t>(a.number("dpdk-mtu", 0));
    o.dpdk.queues = static_cast<uint32_t>(a.number("dpdk-queues", 1));
    if (o.dpdk.queues < 1 || o.dpdk.queues > 16) throw UsageError("--dpdk-queues must be 1..16");
    if (o.dpdk.window_segments > (1u << 20)) throw UsageError("--dpdk-window must be 0..1048576");
    if (o.dpdk.link_gbps <= 0 || o.dpdk.rtt_us <= 0)
        throw UsageError("--dpdk-gbps and --dpdk-rtt-us must be positive");
    return o;
}

size_t chunk_option(const Args& a) {
    uint64_t c = parse_size(a.get_or("chunk", "1M"), "--chunk");
    if (c < 4096 || c > wire::kMaxFramePayload)
        throw UsageError(cat("--chunk must be between 4K and ", wire::kMaxFramePayload >> 20, "M"));
    return c;
}

std::chrono::milliseconds stall_timeout_option(const Args& a) {
    auto s = a.number("stall-timeout", 30);
    if (s < 1 || s > 86400) throw UsageError("--stall-timeout must be 1..86400 seconds");
    return std::chrono::seconds(s);
}

int cmd_migrate(const std::vector<std::string>& argv) {
    Args a(argv,
           cli::with_security_values(
                {"qmp", "to", "multifd", "max-bandwidth", "downtime-limit", "timeout", "progress", "json",
                 "chunk", "socket-buffer", "relay-dir", "profile", "rdma-slots", "rdma-slot-size",
                 "dpdk-eal", "dpdk-window", "dpdk-gbps", "dpdk-rtt-us", "dpdk-mtu", "dpdk-queues", "stall-timeout"}),
           cli::with_security_flags({"no-resume", "verbose", "quiet", "help"}));
    if (auto p = a.get("profile"))
        apply_profile(a, *p, {"multifd", "max-bandwidth", "downtime-limit", "chunk", "socket-buffer",
                              "timeout", "rdma-slots", "rdma-slot-size",
            "dpdk-eal", "dpdk-window", "dpdk-gbps", "dpdk-rtt-us", "dpdk-mtu", "dpdk-queues"});
    if (a.flag("help")) {
        std::fputs(kMigrateUsage, stdout);
        std::fputs(cli::kSecurityUsage, stdout);
        return cli::kOk;
    }
    set_logging(a, "rmig migrate");
    qemu::SourceOptions o;
    o.qmp_path = a.required("qmp");
    o.dest_uri = a.required("to");
    o.settings.multifd_channels = static_cast<uint32_t>(a.number("multifd", 0));
    if (o.settings.multifd_channels > 64) throw UsageError("--multifd must be 0..64");
    o.settings.max_bandwidth = parse_size(a.get_or("max-bandwidth", "10G"), "--max-bandwidth");
    o.settings.downtime_limit_ms = a.number("downtime-limit", 300);
    o.resume_destination = !a.flag("no-resume");
    o.timeout = std::chrono::seconds(a.number("timeout", 600));
    o.stall_timeout = stall_timeout_option(a);
    o.relay_dir = a.get_or("relay-dir", "");
    o.chunk = chunk_option(a);
    o.transport = transport_options(a);
    o.security = cli::security_from_args(a, o.dest_uri, "--to");
    auto mode = cli::progress_mode(a.get_or("progress", "auto"));
    std::FILE* out = a.get("json") == "-" ? stderr : stdout;

    cli::ProgressDisplay display(mode, stderr);
    auto report = qemu::migrate(o, [&](const qemu::Progress& p) { display.update(p); });
    display.finish();
    if (!a.flag("quiet") || report.outcome != qemu::Outcome::completed) cli::print_summary(report, out);
    if (auto j = a.get("json")) write_json(*j, report.to_json());
    switch (report.outcome) {
    case qemu::Outcome::completed: return cli::kOk;
    case qemu::Outcome::refused: return cli::kRefused;
    case qemu::Outcome::failed: return cli::kFailed;
    case qemu::Outcome::source_at_risk: return cli::kSourceAtRisk;
    }
    return cli::kFailed;
}

int cmd_receive(const std::vector<std::string>& argv) {
    Args a(argv,
           cli::with_security_values({"qmp", "listen", "address-file", "timeout", "incoming-dir", "json",
                                      "chunk", "socket-buffer", "profile", "rdma-slots", "rdma-slot-size",
                                      "dpdk-eal", "dpdk-window", "dpdk-gbps", "dpdk-rtt-us", "dpdk-mtu", "dpdk-queues", "stall-timeout"}),
           cli::with_security_flags({"verbose", "quiet", "help"}));
    if (auto p = a.get("profile"))
        apply_profile(a, *p, {"multifd", "max-bandwidth", "downtime-limit", "chunk", "socket-buffer",
                              "timeout", "rdma-slots", "rdma-slot-size",
            "dpdk-eal", "dpdk-window", "dpdk-gbps", "dpdk-rtt-us", "dpdk-mtu", "dpdk-queues"});
    if (a.flag("help")) {
        std::fputs(kReceiveUsage, stdout);
        std::fputs(cli::kSecurityUsage, stdout);
        return cli::kOk;
    }
    set_logging(a, "rmig receive");
    qemu::DestOptions o;
    o.qmp_path = a.required("qmp");
    o.listen_uri = a.required("listen");
    o.timeout = std::chrono::seconds(a.number("timeout", 600));
    o.stall_timeout = stall_timeout_option(a);
    o.incoming_dir = a.get_or("incoming-dir", "");
    o.chunk = chunk_option(a);
    o.transport = transport_options(a);
    o.security = cli::security_from_args(a, o.listen_uri, "--listen");
    auto address_file = a.get_or("address-file", "");
    auto report = qemu::receive(o, [&](const std::string& addr) {
        log::info("listening on ", addr);
        if (!address_file.empty()) {
            // Written whole then renamed, so a watcher never reads half an address.
            std::string tmp = address_file + ".tmp";
            std::ofstream(tmp) << addr << "\n";
            std::rename(tmp.c_str(), address_file.c_str());
        }
    });
    if (auto j = a.get("json")) write_json(*j, report.to_json());
    if (!report.ok) {
        log::error("migration not received: ", report.error);
        return cli::kFailed;
    }
    log::info("guest received; destination QEMU is ", report.final_state);
    return cli::kOk;
}

int cmd_qmp(const std::vector<std::string>& argv) {
    Args a(argv, {"qmp"}, {"help"});
    if (a.flag("help")) {
        std::fputs(kQmpUsage, stdout);
        return cli::kOk;
    }
    auto& pos = a.positional();
    if (pos.empty() || pos.size() > 2) throw UsageError("expected COMMAND [ARGUMENTS-JSON]");
    nlohmann::json args = nlohmann::json::object();
    if (pos.size() == 2) {
        args = nlohmann::json::parse(pos[1], nullptr, false);
        if (args.is_discarded() || !args.is_object())
            throw UsageError("ARGUMENTS-JSON must be a JSON object, e.g. '{\"val\":0}'");
    }
    qemu::QmpClient qmp(a.required("qmp"));
    std::printf("%s\n", qmp.execute(pos[0], args).dump().c_str());
    return cli::kOk;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string cmd = args.empty() ? "help" : args[0];
    std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
    try {
        if (cmd == "migrate") return cmd_migrate(rest);
        if (cmd == "receive") return cmd_receive(rest);
        if (cmd == "qmp") return cmd_qmp(rest);
        if (cmd == "topo") return cli::topo_command(argc - 1, argv + 1);
        if (cmd == "version" || cmd == "--version") {
            std::printf("rmig %s (wire protocol %u)\n", RMIG_VERSION, wire::kProtocolVersion);
            return cli::kOk;
        }
        if (cmd == "help" || cmd == "--help" || cmd == "-h") {
            std::string topic = rest.empty() ? "" : rest[0];
            if (topic == "topo") {
                char help[] = "--help";
                char* targv[] = {argv[0], help, nullptr};
                return cli::topo_command(2, targv);
            }
            std::fputs(topic == "migrate"   ? kMigrateUsage
                       : topic == "receive" ? kReceiveUsage
                       : topic == "qmp"     ? kQmpUsage
                                            : kUsage,
                       stdout);
            if (topic == "migrate" || topic == "receive") std::fputs(cli::kSecurityUsage, stdout);
            return cli::kOk;
        }
        throw UsageError(cat("unknown command '", cmd, "'"));
    } catch (const UsageError& e) {
        std::fprintf(stderr, "rmig: %s\nTry 'rmig help%s'.\n", e.what(),
                     cmd == "migrate" || cmd == "receive" || cmd == "qmp" ? (" " + cmd).c_str() : "");
        return cli::kUsage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rmig %s: error: %s\n", cmd.c_str(), e.what());
        return cli::kFailed;
    }
}
