// rmig: live-migrate QEMU guests over rmig's own channels.
//   rmig receive   on the destination host, next to a QEMU started with -incoming defer
//   rmig migrate   on the source host, next to the running QEMU
//   rmig qmp       run one QMP command (handy in scripts)
//   rmig report    summarize (and plot) an rmig migrate --json report
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include "cli/options.hpp"
#include "cli/profile.hpp"
#include "cli/report_command.hpp"
#include "cli/security_options.hpp"
#include "cli/topo_command.hpp"
#include "cli/tunnel_command.hpp"
#include "cli/progress_display.hpp"
#include "common/args.hpp"
#include "common/exit_codes.hpp"
#include "common/metrics/http_exporter.hpp"
#include "common/log.hpp"
#include "common/units.hpp"
#include "qemu-plugin/migrate_source.hpp"
#include "qemu-plugin/migration_metrics.hpp"
#include "qemu-plugin/qmp_client.hpp"
#include "qemu-plugin/receive_dest.hpp"
#include "transport/backend.hpp"

using namespace rmig;
using rmig::Args;
using rmig::UsageError;

namespace {

// The overview; each command's options and help come from its table
// (cli/options.cpp).
std::string overview() {
    std::string out = R"(usage: rmig <command> [options]

Live-migrates a QEMU/KVM guest through rmig's own channels (channel mode):
QEMU migrates to a UNIX socket on the source host, rmig carries the main and
every multifd stream across the link, and hands them in order to the
destination QEMU. Both QEMUs are driven over QMP.

commands:
)";
    auto line = [&](std::string_view name, std::string_view summary) {
        std::string left = cat("  ", name);
        out += cat(left, std::string(left.size() < 12 ? 12 - left.size() : 1, ' '), summary, "\n");
    };
    for (const auto& c : cli::rmig_program().commands) line(c.name, c.summary);
    line("version", "print the version");
    line("help CMD", "show the options of CMD");
    out += "\ntransports (--to/--listen URI; each one's options in `rmig help migrate`):\n";
    for (const auto& b : transport::backends()) {  // the backends' own descriptions
        const auto& d = *b.description;
        line(d.scheme, d.uri);
        out += cat(std::string(12, ' '), d.summary, "\n");
        if (!b.compiled_in()) out += cat(std::string(12, ' '), "not built in: ", d.build_hint, "\n");
    }
    out += R"(
two hosts:
  both$ openssl rand -hex 32 > key.psk   # once, then copy it to the other host
  dst$ rmig receive --qmp /run/vm1/qmp.sock --listen tcp:0.0.0.0:7070 --psk-file key.psk
  src$ rmig migrate --qmp /run/vm1/qmp.sock --to tcp:dst-host:7070 --multifd 4 --psk-file key.psk

exit codes: 0 done, 1 migration failed (the source guest keeps running),
2 bad arguments, 3 refused by the pre-migration checks (nothing was sent),
4 failed and the source guest could not be confirmed running.
)";
    return out;
}

std::string help_of(const std::string& name) {
    const auto& program = cli::rmig_program();
    return rmig::command_help(program, *program.find(name));
}

void set_logging(const Args& a, const std::string& prefix) {
    log::set_prefix(prefix);
    if (a.flag("verbose")) log::set_level(log::Level::debug);
    if (a.flag("quiet")) log::set_level(log::Level::warn);
}

// Parses `argv` for command `name`, applies --profile, and returns nullopt
// after printing the help when --help was given.
std::optional<Args> parse(const std::string& name, const std::vector<std::string>& argv) {
    const auto& program = cli::rmig_program();
    Args a(argv, program, *program.find(name));
    if (a.command()->find("verbose")) set_logging(a, "rmig " + name);
    if (a.command()->find("profile"))
        if (auto p = a.get("profile")) cli::apply_profile(a, *p);
    if (a.flag("help")) {
        std::fputs(help_of(name).c_str(), stdout);
        return std::nullopt;
    }
    a.check_required();
    return a;
}

void write_json(const std::string& where, const nlohmann::json& j) {
    if (where == "-") {
        std::printf("%s\n", j.dump(2).c_str());
        return;
    }
    std::ofstream out(where);
    out << j.dump(2) << "\n";
    if (!out) throw Error(cat("cannot write the JSON report to ", where));
}

// The options migrate and receive share, into SourceOptions or DestOptions:
// time limits, chunk, transport, and security for `uri` (named `uri_option`).
template <class SessionOptions>
void read_shared_options(const Args& a, SessionOptions& o, const std::string& uri, const char* uri_option) {
    o.timeout = cli::timeout_option(a);
    o.stall_timeout = cli::stall_timeout_option(a);
    o.chunk = cli::chunk_option(a);
    o.transport = cli::transport_options(a);
    o.security = cli::security_from_args(a, uri, uri_option);
}

// --metrics ADDR:PORT: the process's metrics served while the command runs
// (docs/metrics.md); none without it.
std::unique_ptr<metrics::HttpExporter> serve_metrics(const Args& a) {
    return metrics::serve_process_metrics(a.get("metrics"));
}

// A post-copy that broke leaves both QEMUs paused with the guest split
// between them. Resume it over new sessions until `within` is over: the
// other side's rmig waits for one (or is started again), the link comes back.
// A source QEMU that did not pause (QEMU 7.2 can hang in post-copy) or a
// refusal ends the tries.
template <class Run>
qemu::SourceReport recover_postcopy(qemu::SourceReport report, const qemu::SourceOptions& o,
                                    std::chrono::seconds within, Run&& run) {
    // A failed recovery (the other rmig not back yet) is tried again too.
    const bool broken = report.outcome == qemu::Outcome::source_at_risk ||
                        (report.outcome == qemu::Outcome::failed && report.postcopy.recovered);
    if (!broken || !report.postcopy.switched || within.count() == 0) return report;
    const std::string broke = report.error;
    const auto deadline = std::chrono::steady_clock::now() + within;
    qemu::SourceOptions ro = o;
    ro.recover_only = true;
    for (uint32_t attempt = 1; std::chrono::steady_clock::now() < deadline; ++attempt) {
        log::warn("post-copy broke (", broke, "); resuming it over a new session, attempt ", attempt,
                  " (--postcopy-recover ", within.count(), ")");
        std::this_thread::sleep_for(std::chrono::seconds(1));
        auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - std::chrono::steady_clock::now());
        ro.timeout = std::max(std::chrono::seconds(10), std::min(o.timeout, left + std::chrono::seconds(60)));
        qemu::SourceReport next = run(ro);
        next.postcopy.recovery_attempts = attempt;
        next.postcopy.broke = broke;
        if (next.outcome == qemu::Outcome::completed) {
            log::info("post-copy resumed and completed after ", attempt, attempt == 1 ? " try" : " tries");
            return next;
        }
        log::warn("recovery attempt ", attempt, ": ", next.error);
        report.postcopy.recovery_attempts = attempt;
        report.postcopy.broke = broke;
        report.error = cat(broke, "; recovery: ", next.error);
        if (next.outcome == qemu::Outcome::refused) break;  // e.g. the source QEMU is not postcopy-paused
    }
    return report;
}

int cmd_migrate(const std::vector<std::string>& argv) {
    auto parsed = parse("migrate", argv);
    if (!parsed) return exit_code::kOk;
    const Args& a = *parsed;
    qemu::SourceOptions o;
    o.qmp_path = a.text("qmp");
    o.dest_uri = a.text("to");
    o.settings.multifd_channels = static_cast<uint32_t>(a.whole("multifd"));
    o.settings.max_bandwidth = a.whole("max-bandwidth");
    // The earlier name, where given (a command line or profile of before), wins.
    o.settings.downtime_limit_ms = a.whole(a.get("downtime-limit") ? "downtime-limit" : "blackout-budget");
    o.settings.auto_converge = !a.flag("no-auto-converge");
    if (a.get("cpu-throttle-initial") || a.get("cpu-throttle-increment")) {
        if (!o.settings.auto_converge)
            throw UsageError("--cpu-throttle-initial/--cpu-throttle-increment set auto-converge's throttle; "
                             "--no-auto-converge turns it off: give one or the other");
        o.steer_throttle = false;
        if (a.get("cpu-throttle-initial")) o.settings.cpu_throttle_initial = static_cast<uint32_t>(a.whole("cpu-throttle-initial"));
        if (a.get("cpu-throttle-increment"))
            o.settings.cpu_throttle_increment = static_cast<uint32_t>(a.whole("cpu-throttle-increment"));
    }
    o.settings.postcopy = a.flag("postcopy") || a.get("postcopy-after");
    if (a.get("postcopy-after")) o.postcopy_after = static_cast<uint32_t>(a.whole("postcopy-after"));
    if (o.settings.postcopy) {
        if (o.settings.multifd_channels)
            throw UsageError("--postcopy cannot be combined with --multifd (QEMU 7.2 sends post-copy pages on its "
                             "main channel only); drop one of them");
        o.settings.postcopy_preempt = !a.flag("no-postcopy-preempt");
        // Post-copy instead of a throttle: unless the user fixed one, the
        // guest is not slowed, and post-copy finishes what pre-copy cannot.
        if (o.steer_throttle) o.settings.auto_converge = false;
    }
    o.settings.multifd_compression = a.text("qemu-compress");
    if (o.settings.multifd_compression != "none" && o.settings.multifd_channels == 0)
        throw UsageError("--qemu-compress needs --multifd N (QEMU compresses in its multifd threads only)");
    if (a.get("qemu-downtime-limit")) o.qemu_downtime_limit_ms = a.whole("qemu-downtime-limit");
    o.resume_destination = !a.flag("no-resume");
    o.relay_dir = a.text("relay-dir");
    o.flows = static_cast<uint32_t>(a.whole("flows"));
    if (auto paths = a.get("path")) {
        std::istringstream words(*paths);
        for (std::string uri; words >> uri;) o.more_paths.push_back(uri);
    }
    o.reconnect_grace = std::chrono::seconds(a.whole("reconnect-grace"));
    o.window_bytes = a.whole("window");
    o.compression = engine::parse_compression_mode(a.text("compress"));
    read_shared_options(a, o, o.dest_uri, "--to");
    o.congestion = a.text("cc");
    o.socket_buffer_given = a.get("socket-buffer").has_value();
    auto mode = cli::progress_mode(a.text("progress"));
    std::FILE* out = a.get("json") == "-" ? stderr : stdout;

    auto exporter = serve_metrics(a);
    qemu::SourceMetrics source_metrics;
    auto run = [&](const qemu::SourceOptions& opts) {
        cli::ProgressDisplay display(mode, stderr);
        auto r = qemu::migrate(opts, [&](const qemu::Progress& p) {
            display.update(p);
            if (exporter) source_metrics.update(p);
        });
        display.finish();
        return r;
    };
    auto report = run(o);
    report = recover_postcopy(report, o, std::chrono::seconds(a.whole("postcopy-recover")), run);
    if (exporter) source_metrics.finish(report);
    if (!a.flag("quiet") || report.outcome != qemu::Outcome::completed) cli::print_summary(report, out);
    cli::ProfileHint hint;
    if (report.outcome == qemu::Outcome::completed) {
        uint64_t wire = qemu::totals(report.channels).wire;
        double secs = report.final_stats.total_time_ms ? double(report.final_stats.total_time_ms) / 1000 : report.wall_s;
        hint = cli::suggest_profile(report.link_rtt_ms, secs > 0 ? double(wire) / secs : 0);
        if (!hint.name.empty() && !a.flag("quiet") && a.text("profile") != hint.name)
            std::fprintf(out, "  profile        this link (%s) fits hw-configs profile %s (--profile %s)\n",
                         hint.why.c_str(), hint.name.c_str(), hint.name.c_str());
    }
    if (auto j = a.get("json")) {
        auto json = report.to_json();
        json["suggested_profile"] = {{"name", hint.name}, {"why", hint.why}};
        write_json(*j, json);
    }
    switch (report.outcome) {
    case qemu::Outcome::completed: return exit_code::kOk;
    case qemu::Outcome::refused: return exit_code::kRefused;
    case qemu::Outcome::failed: return exit_code::kFailed;
    case qemu::Outcome::source_at_risk: return exit_code::kSourceAtRisk;
    }
    return exit_code::kFailed;
}

int cmd_receive(const std::vector<std::string>& argv) {
    auto parsed = parse("receive", argv);
    if (!parsed) return exit_code::kOk;
    const Args& a = *parsed;
    qemu::DestOptions o;
    o.qmp_path = a.text("qmp");
    o.listen_uri = a.text("listen");
    o.incoming_dir = a.text("incoming-dir");
    read_shared_options(a, o, o.listen_uri, "--listen");
    auto address_file = a.text("address-file");
    auto exporter = serve_metrics(a);
    qemu::DestMetrics dest_metrics;
    if (exporter) o.on_progress = [&](const qemu::DestProgress& p) { dest_metrics.update(p); };
    std::string bound;
    auto on_listening = [&](const std::string& addr) {
        bound = addr;
        log::info("listening on ", addr);
        if (!address_file.empty()) {
            // Written whole then renamed, so a watcher never reads half an address.
            std::string tmp = address_file + ".tmp";
            std::ofstream(tmp) << addr << "\n";
            std::rename(tmp.c_str(), address_file.c_str());
        }
    };
    auto report = qemu::receive(o, on_listening);
    // A broken post-copy left our QEMU paused: wait on the same address for
    // the source's rmig to resume it over a new session.
    const auto recover = std::chrono::seconds(a.whole("postcopy-recover"));
    // The source notices a dead link only after its grace and stall timeout:
    // wait that much longer than its tries last.
    const auto deadline = std::chrono::steady_clock::now() + recover + o.stall_timeout + std::chrono::seconds(30);
    const std::string broke = report.error;
    // Once broken, every failure until the deadline is retried: a try can
    // fail before it knows (QEMU's monitor still busy with the last client).
    const bool broken = report.postcopy_paused;
    while (!report.ok && broken && recover.count() > 0 && !bound.empty() &&
           std::chrono::steady_clock::now() < deadline) {
        log::warn("post-copy broke (", broke, "); waiting up to ", recover.count(),
                  " s on ", bound, " for the source to resume it (--postcopy-recover)");
        std::this_thread::sleep_for(std::chrono::seconds(1));  // never a hot loop, whatever fails
        qemu::DestOptions ro = o;
        ro.listen_uri = bound;
        ro.timeout = std::chrono::duration_cast<std::chrono::seconds>(deadline - std::chrono::steady_clock::now()) +
                     std::chrono::seconds(1);
        qemu::DestReport next = qemu::receive(ro, on_listening);
        if (!next.ok) {
            log::warn("recovery session failed: ", next.error);  // what each try failed on
            next.error = cat(broke, "; recovery: ", next.error);
        }
        report = next;
    }
    if (exporter) dest_metrics.finish(report);
    if (auto j = a.get("json")) write_json(*j, report.to_json());
    if (!report.ok) {
        log::error("migration not received: ", report.error);
        return exit_code::kFailed;
    }
    log::info("guest received; destination QEMU is ", report.final_state);
    return exit_code::kOk;
}

int cmd_qmp(const std::vector<std::string>& argv) {
    auto parsed = parse("qmp", argv);
    if (!parsed) return exit_code::kOk;
    const Args& a = *parsed;
    auto& pos = a.positional();
    if (pos.empty() || pos.size() > 2) throw UsageError("expected COMMAND [ARGUMENTS-JSON]");
    nlohmann::json args = nlohmann::json::object();
    if (pos.size() == 2) {
        args = nlohmann::json::parse(pos[1], nullptr, false);
        if (args.is_discarded() || !args.is_object())
            throw UsageError("ARGUMENTS-JSON must be a JSON object, e.g. '{\"val\":0}'");
    }
    qemu::QmpClient qmp(a.text("qmp"));
    std::printf("%s\n", qmp.execute(pos[0], args).dump().c_str());
    return exit_code::kOk;
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
        if (cmd == "tunnel-send" || cmd == "tunnel-receive") {
            auto parsed = parse(cmd, rest);
            if (!parsed) return exit_code::kOk;
            return cmd == "tunnel-send" ? cli::tunnel_send_command(*parsed) : cli::tunnel_receive_command(*parsed);
        }
        if (cmd == "topo") {
            auto parsed = parse("topo", rest);
            return parsed ? cli::topo_command(*parsed) : exit_code::kOk;
        }
        if (cmd == "report") {
            auto parsed = parse("report", rest);
            return parsed ? cli::report_command(*parsed) : exit_code::kOk;
        }
        if (cmd == "version" || cmd == "--version") {
            std::printf("rmig %s (wire protocol %u)\n", RMIG_VERSION, wire::kProtocolVersion);
            return exit_code::kOk;
        }
        if (cmd == "help" || cmd == "--help" || cmd == "-h") {
            std::string topic = rest.empty() ? "" : rest[0];
            std::fputs((cli::rmig_program().find(topic) ? help_of(topic) : overview()).c_str(), stdout);
            return exit_code::kOk;
        }
        throw UsageError(cat("unknown command '", cmd, "'"));
    } catch (const UsageError& e) {
        std::fprintf(stderr, "rmig: %s\nTry 'rmig help%s'.\n", e.what(),
                     cli::rmig_program().find(cmd) ? (" " + cmd).c_str() : "");
        return exit_code::kUsage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rmig %s: error: %s\n", cmd.c_str(), e.what());
        return exit_code::kFailed;
    }
}
