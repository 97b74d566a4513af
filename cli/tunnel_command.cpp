#include "cli/tunnel_command.hpp"

#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>

#include "cli/options.hpp"
#include "cli/security_options.hpp"
#include "cli/stop_on_signal.hpp"
#include "common/exit_codes.hpp"
#include "common/metrics/http_exporter.hpp"
#include "common/log.hpp"
#include "engine/pages/adaptive_compressor.hpp"
#include "qemu-plugin/session_limits.hpp"
#include "qemu-plugin/stream_group.hpp"
#include "qemu-plugin/tunnel_receive.hpp"
#include "qemu-plugin/tunnel_send.hpp"
#include "security/settings.hpp"
#include "transport/backend.hpp"

namespace rmig::cli {

namespace {

using K = OptionKind;

std::span<const OptionSpec> send_options() {
    static const OptionSpec kOptions[] = {
        {.name = "unix", .metavar = "PATHS",
         .help = "the UNIX socket(s) the source QEMU migrates to (space-separated; e.g. libvirt's --migrateuri "
                 "unix:///PATH); the destination connects its socket of the same file name",
         .required = true},
        {.name = "to", .metavar = "URI", .help = "where `rmig tunnel-receive` listens", .required = true},
        {.name = "path", .metavar = "URIS",
         .help = "more addresses of the same tunnel-receive (space-separated), one per extra path or NIC",
         .default_note = "--to only"},
        {.name = "flows", .kind = K::whole, .metavar = "N",
         .help = "connections per QEMU connection (striped, put back in order); at least one per path",
         .number_default = 1, .min = 1, .max = 16, .profile = true},
        {.name = "reconnect-grace", .kind = K::whole, .metavar = "S",
         .help = "a lost connection is reopened and its unacknowledged data resent for up to S seconds; 0 fails "
                 "the migration at once (the source guest keeps running)",
         .number_default = 30, .max = 600, .profile = true},
        {.name = "compress", .kind = K::choice, .metavar = "CODEC",
         .help = "compress the streams: auto picks lz4, zstd or nothing per segment from the link rate and codec "
                 "speed",
         .text_default = "auto", .choices = "auto|none|lz4|zstd", .profile = true},
        {.name = "window", .kind = K::size, .metavar = "SIZE",
         .help = "data each connection keeps until acknowledged (for resending); at least the link's "
                 "bandwidth x RTT for full rate",
         .number_default = static_cast<double>(qemu::FlowSettings{}.window_bytes), .min = 1 << 20,
         .max = static_cast<double>(qemu::kMaxFlowWindow), .profile = true},
    };
    return kOptions;
}

std::span<const OptionSpec> receive_options() {
    static const OptionSpec kOptions[] = {
        {.name = "listen", .metavar = "URI", .help = "where to wait for `rmig tunnel-send` (port 0: any free port)",
         .required = true},
        {.name = "socket-dir", .metavar = "DIR",
         .help = "where the destination QEMUs' incoming UNIX sockets are: a session for PATH on the source "
                 "connects DIR/<file name of PATH>",
         .required = true},
        {.name = "socket-wait", .kind = K::whole, .metavar = "S",
         .help = "how long a migration's first connection waits for its QEMU socket to exist", .number_default = 30,
         .min = 1, .max = 3600},
        {.name = "max-sessions", .kind = K::whole, .metavar = "N", .help = "migrations at once; more are refused",
         .number_default = 32, .min = 1, .max = 1024},
        {.name = "address-file", .metavar = "FILE", .help = "write the bound address there once listening"},
    };
    return kOptions;
}

std::span<const OptionSpec> service_options() {
    static const OptionSpec kOptions[] = {
        {.name = "timeout", .kind = K::whole, .metavar = "S",
         .help = "stop after S seconds (0: run until SIGTERM or SIGINT); running migrations are aborted",
         .number_default = 0},
        {.name = "sessions", .kind = K::whole, .metavar = "N",
         .help = "stop once N migrations have ended (0: no limit)", .number_default = 0},
        {.name = "stall-timeout", .kind = K::whole, .metavar = "S",
         .help = "a migration fails when nothing moves on any of its connections for S seconds (beyond the "
                 "reconnect grace)",
         .number_default = static_cast<double>(qemu::kDefaultStallTimeout.count()), .min = 1, .max = 86400},
        {.name = "json", .metavar = "FILE",
         .help = "append one JSON line per migration to FILE ('-' for stdout)"},
        {.name = "metrics", .metavar = "ADDR:PORT",
         .help = "serve Prometheus metrics of every running migration at http://ADDR:PORT/metrics "
                 "(docs/metrics.md)",
         .default_note = "off"},
    };
    return kOptions;
}

std::vector<OptionGroup> groups_with(OptionGroup own) {
    std::vector<OptionGroup> groups{own, {"service", service_options()}, {"link", link_options()}};
    for (const auto& g : transport::backend_option_groups()) groups.push_back(g);
    groups.push_back(security::settings_options());
    groups.push_back({"general", general_options()});
    return groups;
}

std::vector<std::string> words(const std::string& text) {
    std::istringstream in(text);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

// Session reports as JSON lines; sessions end on several threads.
class JsonLines {
public:
    explicit JsonLines(std::optional<std::string> where) : where_(std::move(where)) {}
    void write(const qemu::tunnel::SessionReport& r) {
        if (!where_) return;
        std::lock_guard lock(mutex_);
        std::string line = r.to_json().dump() + "\n";
        if (*where_ == "-") {
            std::fputs(line.c_str(), stdout);
            std::fflush(stdout);
            return;
        }
        std::ofstream out(*where_, std::ios::app);
        out << line;
        if (!out) log::warn("cannot append the session report to ", *where_);
    }

private:
    std::optional<std::string> where_;
    std::mutex mutex_;
};

int exit_code_for(uint32_t failed) { return failed ? exit_code::kFailed : exit_code::kOk; }

}  // namespace

const char* const kTunnelSendAbout =
    "A relay for management stacks that drive QEMU themselves, such as libvirt:\n"
    "  virsh migrate --live --p2p --migrateuri unix:///run/rmig/vm1.sock VM DEST-URI\n"
    "The source QEMU connects to PATH (once for the main stream, once per multifd\n"
    "channel); each migration on PATH is one session to `rmig tunnel-receive`,\n"
    "which connects the destination QEMU's socket of the same file name, one\n"
    "connection per connection, in connect order. Runs until stopped; migrations\n"
    "on one path follow one another, several paths run side by side.\n"
    "Exit codes: 0 stopped and every migration succeeded, 1 some failed, 2 bad\n"
    "arguments.";

const char* const kTunnelReceiveAbout =
    "The destination side of `rmig tunnel-send`: serves many migrations, side by\n"
    "side, each into DIR/<file name of the source's PATH> (the destination QEMU's\n"
    "incoming socket, e.g. libvirt's --migrateuri path). Runs until stopped.\n"
    "Exit codes: 0 stopped and every migration succeeded, 1 some failed, 2 bad\n"
    "arguments.";

std::vector<OptionGroup> tunnel_send_groups() { return groups_with({"tunnel-send", send_options()}); }
std::vector<OptionGroup> tunnel_receive_groups() { return groups_with({"tunnel-receive", receive_options()}); }

int tunnel_send_command(const Args& a) {
    qemu::tunnel::SendOptions o;
    o.unix_paths = words(a.text("unix"));
    if (o.unix_paths.empty()) throw UsageError("--unix needs at least one path");
    o.dest_uris.push_back(a.text("to"));
    if (auto more = a.get("path"))
        for (auto& w : words(*more)) o.dest_uris.push_back(w);
    o.flows = static_cast<uint32_t>(a.whole("flows"));
    o.flow.chunk = chunk_option(a);
    o.flow.window_bytes = a.whole("window");
    o.flow.grace = std::chrono::seconds(a.whole("reconnect-grace"));
    o.flow.compression = engine::parse_compression_mode(a.text("compress"));
    o.transport = transport_options(a);
    o.security = security_from_args(a, o.dest_uris.front(), "--to");
    o.stall_timeout = stall_timeout_option(a);
    o.max_sessions = static_cast<uint32_t>(a.whole("sessions"));
    JsonLines json(a.get("json"));
    uint32_t failed = 0;
    StopOnSignal stop(std::chrono::seconds(a.whole("timeout")));  // first: threads after it inherit its mask
    auto exporter = metrics::serve_process_metrics(a.get("metrics"));
    qemu::tunnel::serve_send(o, stop.token(), [&](const qemu::tunnel::SessionReport& r) {
        failed += r.ok ? 0 : 1;
        json.write(r);
    });
    return exit_code_for(failed);
}

int tunnel_receive_command(const Args& a) {
    qemu::tunnel::ReceiveOptions o;
    o.listen_uri = a.text("listen");
    o.socket_dir = a.text("socket-dir");
    o.socket_wait = std::chrono::seconds(a.whole("socket-wait"));
    o.max_concurrent = static_cast<uint32_t>(a.whole("max-sessions"));
    o.chunk = chunk_option(a);
    o.transport = transport_options(a);
    o.security = security_from_args(a, o.listen_uri, "--listen");
    o.stall_timeout = stall_timeout_option(a);
    o.max_sessions = static_cast<uint32_t>(a.whole("sessions"));
    auto address_file = a.text("address-file");
    JsonLines json(a.get("json"));
    uint32_t failed = 0;
    StopOnSignal stop(std::chrono::seconds(a.whole("timeout")));  // first: threads after it inherit its mask
    auto exporter = metrics::serve_process_metrics(a.get("metrics"));
    qemu::tunnel::serve_receive(
        o, stop.token(),
        [&](const std::string& addr) {
            if (address_file.empty()) return;
            // Written whole then renamed, so a watcher never reads half an address.
            std::string tmp = address_file + ".tmp";
            std::ofstream(tmp) << addr << "\n";
            std::rename(tmp.c_str(), address_file.c_str());
        },
        [&](const qemu::tunnel::SessionReport& r) {
            failed += r.ok ? 0 : 1;
            json.write(r);
        });
    return exit_code_for(failed);
}

}  // namespace rmig::cli
