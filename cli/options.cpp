#include "cli/options.hpp"

#include "cli/report_command.hpp"
#include "cli/topo_command.hpp"
#include "cli/tunnel_command.hpp"
#include "qemu-plugin/migration_settings.hpp"
#include "qemu-plugin/session_limits.hpp"
#include "qemu-plugin/stream_group.hpp"
#include "security/settings.hpp"
#include "transport/backend.hpp"
#include "wire/stream_segment.hpp"

namespace rmig::cli {

namespace {

using K = OptionKind;

double seconds(std::chrono::seconds s) { return static_cast<double>(s.count()); }

std::span<const OptionSpec> migrate_options() {
    static const qemu::MigrationSettings settings;
    static const std::string to_help =
        cat("where `rmig receive` listens: ", transport::compiled_in_uris(), " (`rmig help` lists the transports)");
    static const OptionSpec kOptions[] = {
        {.name = "qmp", .metavar = "PATH", .help = "the source QEMU's QMP UNIX socket", .required = true},
        {.name = "to", .metavar = "URI", .help = to_help, .required = true},
        {.name = "flows", .kind = K::whole, .metavar = "N",
         .help = "connections per QEMU stream (striped, put back in order): more windows and loss recovery in "
                 "parallel on long links; at least one per path",
         .number_default = 1, .min = 1, .max = 16, .profile = true},
        {.name = "path", .metavar = "URIS",
         .help = "more addresses of the same `rmig receive` (space-separated), one per extra path or NIC: "
                 "flows go round the paths, each carries what its rate allows",
         .default_note = "--to only"},
        {.name = "reconnect-grace", .kind = K::whole, .metavar = "S",
         .help = "a lost connection is reopened and its unacknowledged data resent for up to S seconds while "
                 "QEMU only pauses; 0 fails the migration at once (the source guest keeps running)",
         .number_default = 30, .max = 600, .profile = true},
        {.name = "compress", .kind = K::choice, .metavar = "CODEC",
         .help = "compress the streams: auto picks lz4, zstd or nothing per segment from the measured link rate "
                 "and codec speed (nothing on a link faster than the codecs); none, lz4, zstd force one",
         .text_default = "auto", .choices = "auto|none|lz4|zstd", .profile = true},
        {.name = "cc", .metavar = "NAME",
         .help = "TCP congestion control of the data connections: auto (bbr on a link of 10 ms RTT or more, "
                 "where loss-driven control recovers too slowly), default (the host's), or a kernel module's "
                 "name (cubic, bbr, ...)",
         .text_default = "auto", .profile = true},
        {.name = "qemu-compress", .kind = K::choice, .metavar = "CODEC",
         .help = "QEMU's own multifd-compression on both sides (needs --multifd): QEMU's multifd threads compress "
                 "straight from guest memory, cheaper than rmig's --compress on a host short of cores; rmig's "
                 "auto then finds the data incompressible and sends it as is",
         .text_default = "none", .choices = "none|zlib|zstd", .profile = true},
        {.name = "window", .kind = K::size, .metavar = "SIZE",
         .help = "data each stream keeps until acknowledged (for resending); at least the link's "
                 "bandwidth x RTT for full rate",
         .number_default = static_cast<double>(qemu::FlowSettings{}.window_bytes), .min = 1 << 20,
         .max = static_cast<double>(qemu::kMaxFlowWindow), .profile = true},
        {.name = "multifd", .kind = K::whole, .metavar = "N",
         .help = "use QEMU multifd with N channels (rmig carries N+1 streams); 0 uses the main stream only",
         .number_default = static_cast<double>(settings.multifd_channels), .max = 64, .profile = true},
        // The rmig command's own default (10 GiB/s); MigrationSettings' (10e9)
        // is what library callers get.
        {.name = "max-bandwidth", .kind = K::size, .metavar = "RATE",
         .help = "QEMU's bandwidth cap in bytes/s (K/M/G suffixes; QEMU 7.2's own default, 128 MiB/s, is too "
                 "low for busy guests)",
         .number_default = 10.0 * (1ULL << 30), .profile = true},
        {.name = "blackout-budget", .kind = K::whole, .metavar = "MS",
         .help = "the longest the guest may stay stopped at switchover (its blackout): rmig steers QEMU to fit "
                 "it (QEMU's downtime-limit gets what rmig's own drain leaves of it; auto-converge slows a guest "
                 "that dirties memory faster than pre-copy can follow, with a throttle rmig plans from the link "
                 "and dirty rates it measures; docs/convergence.md)",
         .number_default = static_cast<double>(settings.downtime_limit_ms), .profile = true},
        {.name = "downtime-limit", .kind = K::whole, .metavar = "MS",
         .help = "the same as --blackout-budget (its earlier name; wins where both are given)",
         .default_note = "-", .profile = true},
        {.name = "no-auto-converge", .kind = K::flag,
         .help = "experts: never slow the guest; a guest that dirties faster than the link may then not converge"},
        {.name = "cpu-throttle-initial", .kind = K::whole, .metavar = "PERCENT",
         .help = "experts: QEMU's first auto-converge throttle, fixed (rmig then does not plan it)",
         .default_note = "planned by rmig", .min = 1, .max = 99},
        {.name = "cpu-throttle-increment", .kind = K::whole, .metavar = "PERCENT",
         .help = "experts: QEMU's auto-converge throttle step, fixed (rmig then does not plan it)",
         .default_note = "planned by rmig", .min = 1, .max = 99},
        {.name = "postcopy", .kind = K::flag,
         .help = "allow post-copy: once a pass over the guest's RAM shows that pre-copy would not converge "
                 "within the blackout budget, switch; the guest then runs on the destination at once and its "
                 "remaining pages follow, those it touches first (auto-converge is off then: the guest is "
                 "never slowed; docs/postcopy.md). Not with --multifd"},
        {.name = "postcopy-after", .kind = K::whole, .metavar = "N",
         .help = "switch to post-copy after N passes over the guest's RAM, whatever pre-copy would do "
                 "(0: at once); implies --postcopy",
         .default_note = "when pre-copy would not converge", .max = 1000},
        {.name = "no-postcopy-preempt", .kind = K::flag,
         .help = "experts: no separate channel for the pages the destination faults on (QEMU's "
                 "postcopy-preempt, used where both QEMUs have it)"},
        {.name = "qemu-downtime-limit", .kind = K::whole, .metavar = "MS",
         .help = "experts: give QEMU exactly this downtime-limit; rmig then neither steers it nor bounds its "
                 "in-flight data, so the blackout may exceed it",
         .default_note = "steered by rmig"},
        {.name = "no-resume", .kind = K::flag, .help = "leave the destination guest paused when done"},
        {.name = "progress", .kind = K::choice, .metavar = "MODE",
         .help = "progress on stderr: tty is one line redrawn in place, line one line a second, auto tty on "
                 "a terminal and line elsewhere",
         .text_default = "auto", .choices = "auto|tty|line|none"},
        {.name = "relay-dir", .metavar = "DIR", .help = "where the relay's private UNIX socket is made",
         .default_note = "/tmp"},
    };
    return kOptions;
}

std::span<const OptionSpec> receive_options() {
    static const std::string listen_help =
        cat("where to wait for `rmig migrate`: ", transport::compiled_in_uris(), " (port 0: any free port)");
    static const OptionSpec kOptions[] = {
        {.name = "qmp", .metavar = "PATH",
         .help = "the destination QEMU's QMP socket (QEMU started with -incoming defer; add -S to keep the "
                 "guest paused until rmig confirms it arrived)",
         .required = true},
        {.name = "listen", .metavar = "URI", .help = listen_help, .required = true},
        {.name = "address-file", .metavar = "FILE", .help = "write the bound address there once listening"},
        {.name = "incoming-dir", .metavar = "DIR", .help = "where QEMU's incoming UNIX socket is made",
         .default_note = "/tmp"},
    };
    return kOptions;
}

std::span<const OptionSpec> qmp_options() {
    static const OptionSpec kOptions[] = {
        {.name = "qmp", .metavar = "PATH", .help = "the QEMU's QMP UNIX socket", .required = true},
        {.name = "help", .kind = K::flag, .help = "this text"},
    };
    return kOptions;
}

}  // namespace

std::span<const OptionSpec> session_options() {
    static const OptionSpec kOptions[] = {
        {.name = "timeout", .kind = K::whole, .metavar = "S",
         .help = "give up after S seconds in all (migrate: cancel; the source guest keeps running)",
         .number_default = seconds(qemu::kDefaultTimeout), .profile = true},
        {.name = "stall-timeout", .kind = K::whole, .metavar = "S",
         .help = "give up (migrate: cancel) when no byte moves on the link for S seconds",
         .number_default = seconds(qemu::kDefaultStallTimeout), .min = 1, .max = 86400},
        {.name = "postcopy-recover", .kind = K::whole, .metavar = "S",
         .help = "after a post-copy broke (the link down past the reconnect grace, or the other side's rmig "
                 "gone), keep trying for S seconds to resume it over a new session (QEMU's migrate-recover), "
                 "the guest going on on the destination; 0: stop at once and leave both QEMUs paused for a "
                 "later `rmig migrate`/`rmig receive`, which resume it (docs/postcopy.md)",
         .number_default = 120, .max = 86400, .profile = true},
        {.name = "json", .metavar = "FILE", .help = "write a JSON report to FILE ('-' for stdout)"},
        {.name = "metrics", .metavar = "ADDR:PORT",
         .help = "serve the migration's Prometheus metrics at http://ADDR:PORT/metrics while it runs "
                 "(docs/metrics.md)",
         .default_note = "off"},
    };
    return kOptions;
}

std::span<const OptionSpec> link_options() {
    static const transport::Options defaults;
    static const OptionSpec kOptions[] = {
        {.name = "chunk", .kind = K::size, .metavar = "SIZE", .help = "largest data frame",
         .number_default = static_cast<double>(qemu::kDefaultChunk), .min = 4096,
         .max = wire::kMaxFramePayload - wire::kSegmentHeaderSize,
         .profile = true},
        {.name = "socket-buffer", .kind = K::size, .metavar = "SIZE",
         .help = "TCP send/receive buffer per connection; migrate sizes it from the measured RTT (2 x its "
                 "share of RTT x max-bandwidth, up to 64 MiB) unless given",
         .number_default = static_cast<double>(defaults.socket_buffer_bytes), .max = 1 << 30, .profile = true},
    };
    return kOptions;
}

std::span<const OptionSpec> general_options() {
    static const OptionSpec kOptions[] = {
        {.name = "profile", .metavar = "NAME|FILE",
         .help = "a hw-configs profile (e.g. dc-25g, wan-100ms; hw-configs/README.md); options given on the "
                 "command line win"},
        {.name = "verbose", .kind = K::flag, .help = "more logging on stderr"},
        {.name = "quiet", .kind = K::flag, .help = "less logging on stderr"},
        {.name = "help", .kind = K::flag, .help = "this text"},
    };
    return kOptions;
}

namespace {

// A command's own group, then the groups migrate and receive share: each
// transport backend's options come from its own description.
std::vector<OptionGroup> with_shared_groups(OptionGroup own) {
    std::vector<OptionGroup> groups{own, {"time limits and reports", session_options()}, {"link", link_options()}};
    for (const auto& g : transport::backend_option_groups()) groups.push_back(g);
    groups.push_back(security::settings_options());
    groups.push_back({"general", general_options()});
    return groups;
}

}  // namespace

const ProgramSpec& rmig_program() {
    static const ProgramSpec kProgram{
        "rmig",
        {
            {"migrate", "--qmp PATH --to tcp:HOST:PORT [options]",
             "run on the source host, beside the running QEMU",
             "",
             with_shared_groups({"migrate", migrate_options()})},
            {"receive", "--qmp PATH --listen tcp:ADDR:PORT [options]",
             "run on the destination host, beside a QEMU started with -incoming defer",
             "",
             with_shared_groups({"receive", receive_options()})},
            {"qmp", "--qmp PATH COMMAND [ARGUMENTS-JSON]", "run one QMP command and print its JSON result",
             "  e.g. rmig qmp --qmp /run/vm1/qmp.sock query-status\n"
             "       rmig qmp --qmp /run/vm1/qmp.sock pmemsave "
             "'{\"val\":0,\"size\":1048576,\"filename\":\"/tmp/m\"}'",
             {{"", qmp_options()}}},
            {"topo", "[options]", "show NUMA nodes, the NIC's node and where workers would run",
             "Shows the NUMA nodes, cores and memory hwloc finds, the node of the NIC, and\n"
             "which PUs rmig's workers would be pinned to and where its buffers would go.",
             {{"", topo_options()}}},
            {"tunnel-send", "--unix PATH --to tcp:HOST:PORT [options]",
             "relay QEMU's migration from a UNIX path (libvirt --migrateuri unix://) to tunnel-receive",
             kTunnelSendAbout, tunnel_send_groups()},
            {"tunnel-receive", "--listen tcp:ADDR:PORT --socket-dir DIR [options]",
             "the destination side of tunnel-send: connects the destination QEMU's UNIX socket",
             kTunnelReceiveAbout, tunnel_receive_groups()},
            {"report", "FILE.json [--plot OUT.svg|OUT.png] [--json]",
             "summarize an rmig migrate --json report; plot its timeline",
             "Prints the outcome, total time, blackout, bytes, rounds, compression and\n"
             "reconnects of a report written by `rmig migrate --json FILE`. With --plot,\n"
             "draws (gnuplot) throughput, dirty rate and remaining bytes over time, a\n"
             "dashed line at each QEMU round, and the switchover as a shaded band as wide\n"
             "as the guest's blackout.\n\n"
             "exit codes: 0 shown (and plotted), 1 the report is missing, not JSON or not\n"
             "an rmig migrate report, 2 bad arguments, 3 --plot but the report has no\n"
             "timeline (written by an older rmig, or the migration never started),\n"
             "4 --plot failed (gnuplot not installed: apt install gnuplot-nox; or OUT\n"
             "not writable).\n\n"
             "  e.g. rmig report report.json --plot migration.svg",
             {{"", report_options()}}},
        }};
    return kProgram;
}

std::chrono::seconds timeout_option(const Args& a) {
    return std::chrono::seconds(a.whole("timeout"));
}

std::chrono::milliseconds stall_timeout_option(const Args& a) {
    return std::chrono::seconds(a.whole("stall-timeout"));
}

size_t chunk_option(const Args& a) { return a.whole("chunk"); }

transport::BackendSettings backend_settings(const Args& a) {
    transport::BackendSettings s;
    for (const auto& g : transport::backend_option_groups())
        for (const auto& o : g.options)
            if (auto v = a.get(std::string(o.name))) s.set(o.name, *v);  // given; else the backend's default
    return s;
}

transport::Options transport_options(const Args& a) {
    transport::Options o;
    o.socket_buffer_bytes = static_cast<int>(a.whole("socket-buffer"));
    o.tuning = backend_settings(a);
    return o;
}

}  // namespace rmig::cli
