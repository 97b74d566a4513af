#include "qemu-plugin/migrate_source.hpp"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/temp_dir.hpp"
#include "common/units.hpp"
#include "qemu-plugin/control_link.hpp"
#include "qemu-plugin/downtime_budget.hpp"
#include "qemu-plugin/source_relay.hpp"
#include "qemu-plugin/stall_guard.hpp"
#include "security/secure_transport.hpp"

namespace rmig::qemu {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char* to_string(Outcome o) {
    switch (o) {
    case Outcome::completed: return "completed";
    case Outcome::refused: return "refused";
    case Outcome::failed: return "failed";
    case Outcome::source_at_risk: return "source-at-risk";
    }
    return "?";
}

json SourceReport::to_json() const {
    json ch = json::array();
    for (auto& c : channels)
        ch.push_back({{"channel", c.channel},
                      {"sent_bytes", c.to_link},
                      {"received_bytes", c.from_link},
                      {"wire_bytes", c.wire},
                      {"flows_up", c.flows},
                      {"reconnects", c.reconnects},
                      {"resent_bytes", c.resent}});
    auto sums = totals(channels);
    const auto& packed = sums.compression;
    json packing = {{"mode", engine::to_string(compression)},
                        {"in_bytes", packed.in_bytes},
                        {"wire_bytes", packed.wire_bytes},
                        {"ratio", packed.in_bytes ? double(packed.wire_bytes) / double(packed.in_bytes) : 1.0},
                        {"segments",
                         {{"none", packed.segments[0]}, {"lz4", packed.segments[1]}, {"zstd", packed.segments[2]}}},
                        {"choice", packed.choice}};
    json flow_report = {{"per_stream", flows},
                        {"paths", paths},
                        {"reconnect_grace_ms", reconnect_grace.count()},
                        {"reconnects", sums.reconnects},
                        {"control_reopened", control_reopened},
                        {"resent_bytes", sums.resent}};
    return {{"outcome", to_string(outcome)},
            {"error", error},
            {"session", session},
            {"checks", qemu::to_json(checks)},
            {"settings", qemu::to_json(settings)},
            {"qemu",
             {{"status", final_stats.status},
              {"total_time_ms", final_stats.total_time_ms},
              {"setup_time_ms", final_stats.setup_time_ms},
              {"downtime_ms", final_stats.downtime_ms},
              {"ram_transferred_bytes", final_stats.ram_transferred},
              {"ram_total_bytes", final_stats.ram_total},
              {"multifd_bytes", final_stats.multifd_bytes},
              {"dirty_sync_count", final_stats.dirty_sync_count},
              {"mbps", final_stats.mbps},
              {"error", final_stats.error_desc}}},
            {"blackout", blackout.to_json()},
            {"timeline", timeline.to_json()},
            {"flows", flow_report},
            {"compression", packing},
            {"convergence",
             {{"auto_converge", settings.auto_converge},
              {"steered", convergence.steered},
              {"cpu_throttle_initial", convergence.throttle.initial},
              {"cpu_throttle_increment", convergence.throttle.increment},
              {"max_throttle_percent", convergence.max_throttle},
              {"last_converging", convergence.last.known ? json(convergence.last.converging) : json(nullptr)},
              {"last_forecast_s", convergence.last.forecast_s >= 0 ? json(convergence.last.forecast_s) : json(nullptr)},
              {"last_dirty_rate_bytes_per_s", convergence.last.dirty_rate},
              {"link_rate_bytes_per_s", convergence.last.link_rate}}},
            {"postcopy",
             {{"enabled", settings.postcopy},
              {"preempt", settings.postcopy_preempt},
              {"switched", postcopy.switched},
              {"reason", postcopy.reason},
              {"after_passes", postcopy.after_passes},
              {"switched_at_s", postcopy.switched ? json(postcopy.switched_at_s) : json(nullptr)},
              {"phase_s", postcopy.switched ? json(postcopy.phase_s) : json(nullptr)},
              {"requests", postcopy.requests},
              {"bytes", postcopy.bytes},
              {"recovered", postcopy.recovered},
              {"recovery_attempts", postcopy.recovery_attempts},
              {"broke", postcopy.broke}}},
            {"downtime_budget",
             {{"limit_ms", settings.downtime_limit_ms},
              {"qemu_limit_ms", budget.qemu_limit_ms},
              {"drain_ms", budget.drain_ms},
              {"resume_ms", budget.resume_ms},
              {"floored", budget.floored},
              {"in_flight_bytes", in_flight_bytes},
              {"in_flight_cap_per_channel_bytes", in_flight_cap},
              {"drain_rate_bytes_per_s", drain_rate}}},
            {"channels", ch},
            {"wall_s", wall_s},
            {"link_rtt_ms", link_rtt_ms},
            {"link_tuning",
             {{"congestion_control", link_tuning.congestion_control.empty() ? "host default" : link_tuning.congestion_control},
              {"socket_buffer_bytes", link_tuning.socket_buffer},
              {"why", link_tuning.why}}},
            {"source_state", source_state},
            {"destination", destination}};
}

namespace {

uint64_t relay_bytes(const StreamGroup& g) {
    uint64_t total = 0;
    for (auto& c : g.stats()) total += c.to_link;
    return total;
}

// Bytes moved in either direction, all channels: what the stall watchdog watches.
uint64_t relay_traffic(const StreamGroup& g) {
    uint64_t total = 0;
    for (auto& c : g.stats()) total += c.to_link + c.from_link;
    return total;
}

bool terminal(const std::string& status) {
    return status == "completed" || status == "failed" || status == "cancelled";
}

// How long a resumed post-copy may still say postcopy-paused: QEMU's
// resume handshake (the destination's received-page bitmaps, then its ack)
// over the new connection.
constexpr milliseconds kResumeHandshake{10000};

// Pings before the migration: the fastest gives the round trip and the
// destination's clock offset (blackout.hpp).
constexpr int kClockPings = 5;

// The allowance, beyond the round trip, for the destination to see its QEMU
// loaded and resume it (QMP events, one 'cont'): measured at 1-3 ms on one
// host (docs/blackout.md).
constexpr double kResumeAllowanceMs = 5.0;

// The share of the user's downtime limit that rmig's own in-flight data may
// take to drain at the measured rate, and the least a channel may queue.
constexpr double kDrainShare = 0.25;
constexpr uint64_t kMinInFlight = 256 << 10;
constexpr double kWindowRoundTrips = 2.0;
// The fastest link socket buffers are sized for when QEMU's max-bandwidth
// says nothing tighter (10 Gbit/s).
constexpr uint64_t kLinkRateCap = 1250000000;

class SourceRun {
public:
    SourceRun(const SourceOptions& o, const std::function<void(const Progress&)>& p)
        : opts_(o), on_progress_(p) {}

    SourceReport run() {
        start_ = Clock::now();
        start_wall_us_ = wall_clock_us();
        try {
            execute();
        } catch (const std::exception& e) {
            if (report_.error.empty()) report_.error = e.what();
            if (report_.outcome == Outcome::completed) report_.outcome = Outcome::failed;
            if (auto reason = link_ ? link_->peer_abort() : std::nullopt) {
                dest_aborted_ = true;
                if (report_.error.find(*reason) == std::string::npos)
                    report_.error += cat("; the destination reports: ", *reason);
            }
            // A recovery never resumes the guest (a refusal changed nothing).
            if (migration_started_ || (report_.postcopy.recovered && report_.outcome != Outcome::refused))
                make_source_safe();
            else
                note_source_state();
            if (link_) link_->send_abort(report_.error);
        }
        report_.wall_s = std::chrono::duration<double>(Clock::now() - start_).count();
        return report_;
    }

private:
    void execute() {
        qmp_ = connect_qmp(opts_.qmp_path, "source");
        QemuInfo src = probe(*qmp_);
        // A broken post-copy waits here: from now on this run is its
        // recovery, and a failure never resumes the guest.
        if (opts_.recover_only || parse_migration_stats(qmp_->execute("query-migrate")).status == "postcopy-paused") {
            report_.postcopy.switched = true;
            report_.postcopy.recovered = true;
        }
        connect_destination();
        sync_clocks();
        json probed = ask({{"op", "probe"}});
        QemuInfo dst = info_from_json(probed.at("info"));
        // An rmig before post-copy does not list them: no post-copy there.
        for (auto& c : probed.value("capabilities", json::array())) dst_caps_.insert(c.get<std::string>());
        report_.checks = check_pair(src, dst);
        auto status = parse_migration_stats(qmp_->execute("query-migrate")).status;
        if (opts_.recover_only && (status == "postcopy-active" || status == "postcopy-recover")) {
            // Not paused (yet): a broken link QEMU has not noticed, or a
            // resume handshake that failed. Pause it where a recovery can
            // start; if it will not, this try fails and the next one asks again.
            pause_postcopy();
            status = parse_migration_stats(qmp_->execute("query-migrate")).status;
            if (status != "postcopy-paused")
                throw Error(cat("the source QEMU's post-copy is '", status,
                                "' and does not pause (QEMU 7.2 can hang there for good, docs/postcopy.md)"));
        }
        if (status == "postcopy-paused") return recover(src);
        if (opts_.recover_only) {
            report_.checks.push_back(
                {"source migration", false, cat("'", status, "', not postcopy-paused: nothing to recover")});
            refuse();
        }
        bool idle = !(status == "setup" || status == "active" || status == "device" ||
                      status == "pre-switchover" || status == "cancelling" || status.rfind("postcopy", 0) == 0);
        report_.checks.push_back({"source migration", idle,
                                  idle ? status : cat("a migration is already '", status, "'")});
        if (!all_ok(report_.checks)) refuse();

        MigrationSettings want = opts_.settings;
        if (want.postcopy) {
            if (want.multifd_channels)
                throw Error("post-copy and multifd do not mix here: QEMU 7.2 sends post-copy pages on its main "
                            "channel only and takes every later connection for multifd; drop --multifd or "
                            "--postcopy (nothing was started)");
            // The preempt channel where both QEMUs have it (7.1+): faulted
            // pages then overtake the background push.
            want.postcopy_preempt = want.postcopy_preempt && has_capability(*qmp_, "postcopy-preempt") &&
                                    dst_caps_.contains("postcopy-preempt");
            bool src_ok = has_capability(*qmp_, "postcopy-ram"), dst_ok = dst_caps_.contains("postcopy-ram");
            report_.checks.push_back(
                {"post-copy support", src_ok && dst_ok,
                 src_ok && dst_ok ? "both QEMUs have postcopy-ram"
                 : !src_ok        ? "the source QEMU has no postcopy-ram capability"
                 : dst_caps_.empty()
                     ? "the destination's rmig does not report its QEMU's capabilities: update it to use post-copy"
                     : "the destination QEMU has no postcopy-ram capability"});
            if (!all_ok(report_.checks)) refuse();
        }
        // delivery_reports: an rmig before them would take an unasked report
        // for a reply, so the destination sends them only when asked.
        json prepared = ask({{"op", "prepare"},
                             {"settings", to_json(want)},
                             {"delivery_reports", true},
                             {"flows", {{"window_bytes", opts_.window_bytes},
                                        {"grace_ms", opts_.reconnect_grace.count()}}}});
        // The destination keeps the session for the grace now: a lost
        // control connection is reopened, like a flow.
        if (opts_.reconnect_grace.count() > 0) link_->resume_with([this] { return reopen_control(); }, opts_.reconnect_grace);
        apply_settings(*qmp_, want, Side::source);
        report_.settings = read_settings(*qmp_);
        if (opts_.qemu_downtime_limit_ms)
            qmp_->execute("migrate-set-parameters", {{"downtime-limit", *opts_.qemu_downtime_limit_ms}});
        MigrationSettings dst_settings = settings_from_json(prepared.at("settings"));
        report_.checks.push_back(check_settings(report_.settings, dst_settings));
        if (want.postcopy) report_.checks.push_back(check_postcopy(report_.settings, dst_settings));
        if (!all_ok(report_.checks)) refuse();
        // QEMU's downtime-limit now tracks what rmig's drain leaves of the
        // user's limit; the report keeps the user's.
        report_.budget.qemu_limit_ms = opts_.qemu_downtime_limit_ms.value_or(report_.settings.downtime_limit_ms);
        report_.convergence.steered = opts_.steer_throttle && report_.settings.auto_converge;
        report_.convergence.throttle = {report_.settings.cpu_throttle_initial, report_.settings.cpu_throttle_increment};
        was_running_ = src.run_state == "running";
        qmp_->take_events();  // only this migration's STOP counts
        run_relay();
    }

    // A broken post-copy (docs/postcopy.md, "When post-copy breaks"): our
    // QEMU waits in postcopy-paused, the destination's too. A new session:
    // the destination puts its QEMU on migrate-recover, ours migrates with
    // resume over a new relay, and the rest is a post-copy like any other.
    // The guest runs on the destination: ours is never resumed.
    void recover(const QemuInfo& src) {
        recovering_ = true;
        postcopy_requested_ = true;
        report_.postcopy.switched = true;
        report_.postcopy.recovered = true;
        report_.postcopy.reason = "resuming a broken post-copy (QEMU's postcopy-paused)";
        // The run states are those of a paused post-copy (the source QEMU
        // in finish-migrate); the destination checks its own QEMU is in
        // postcopy-paused.
        std::erase_if(report_.checks,
                      [](const Check& c) { return c.name == "destination state" || c.name == "source state"; });
        report_.checks.push_back({"source migration", true, "postcopy-paused: resuming it over a new session"});
        if (!all_ok(report_.checks)) refuse();
        MigrationSettings now = read_settings(*qmp_);
        json prepared = ask({{"op", "prepare"},
                             {"recover", true},
                             {"settings", to_json(now)},
                             {"delivery_reports", true},
                             {"flows", {{"window_bytes", opts_.window_bytes},
                                        {"grace_ms", opts_.reconnect_grace.count()}}}});
        if (!prepared.value("recovering", false))
            throw Error("the destination's rmig does not know post-copy recovery: update it");
        if (opts_.reconnect_grace.count() > 0) link_->resume_with([this] { return reopen_control(); }, opts_.reconnect_grace);
        report_.settings = now;
        MigrationSettings dst_settings = settings_from_json(prepared.at("settings"));
        report_.checks.push_back(check_settings(report_.settings, dst_settings));
        report_.checks.push_back(check_postcopy(report_.settings, dst_settings));
        if (!all_ok(report_.checks)) refuse();
        report_.budget.qemu_limit_ms = report_.settings.downtime_limit_ms;
        was_running_ = false;  // the guest runs on the destination
        (void)src;
        qmp_->take_events();
        postcopy_wall_us_ = wall_clock_us();
        report_.postcopy.switched_at_s = std::chrono::duration<double>(Clock::now() - start_).count();
        run_relay();
    }

    // The relay to the destination, QEMU's migration through it, and the
    // end: shared by a migration and a recovery.
    void run_relay() {
        TempDir dir("rmig-relay", opts_.relay_dir);
        RelayConfig rc;
        rc.dest_uris = {opts_.dest_uri};
        rc.dest_uris.insert(rc.dest_uris.end(), opts_.more_paths.begin(), opts_.more_paths.end());
        rc.flows = opts_.flows;
        rc.session = session_;
        rc.channels = report_.settings.connections();
        // Draining after a failure is for multifd streams, which QEMU
        // closes by itself. A postcopy-preempt stream drained would swallow
        // the pages QEMU still sends, as if they had arrived.
        if (report_.settings.postcopy) rc.multifd_drain = milliseconds(0);
        // Without a preempt channel a page QEMU sends for a fault queues
        // behind what sits in the relay's socket: keep that small too.
        if (report_.settings.postcopy && !report_.settings.postcopy_preempt) rc.qemu_socket_buffer_bytes = 256 << 10;
        rc.flow = flow_settings();
        report_.flows = std::max<uint32_t>(rc.flows, static_cast<uint32_t>(rc.dest_uris.size()));
        report_.paths = rc.dest_uris;
        report_.reconnect_grace = opts_.reconnect_grace;
        report_.compression = compression();
        if (report_.compression != opts_.compression)
            log::info("compression: QEMU compresses its multifd pages (", report_.settings.multifd_compression,
                      "); rmig's automatic compression stays off");
        rc.transport = opts_.transport;
        LinkTuningInput lt;
        lt.rtt_ms = report_.link_rtt_ms;
        lt.rate_cap = double(std::min<uint64_t>(report_.settings.max_bandwidth, kLinkRateCap));
        lt.connections = rc.channels * report_.flows;
        lt.congestion = opts_.congestion;
        lt.bbr_usable = opts_.congestion == kCongestionAuto && congestion_control_usable("bbr");
        lt.socket_buffer = opts_.transport.socket_buffer_bytes;
        lt.socket_buffer_given = opts_.socket_buffer_given;
        report_.link_tuning = tune_link(lt);
        // A congestion control the user named is tried before anything
        // starts (auto only ever picks one it has tried).
        if (auto& cc = report_.link_tuning.congestion_control; !cc.empty() && opts_.congestion != kCongestionAuto) {
            try {
                require_congestion_control(cc);
            } catch (const Error& e) {
                throw Error(cat(e.what(), "; nothing was started"));
            }
        }
        rc.transport.congestion_control = report_.link_tuning.congestion_control;
        rc.transport.socket_buffer_bytes = report_.link_tuning.socket_buffer;
        log::info("data connections: ", report_.link_tuning.why);
        rc.security = opts_.security;
        SourceRelay relay(dir.path() + "/source.sock", rc);
        // The destination's abort breaks the relay at once, even while a
        // data channel is blocked and QEMU holds its lock.
        ActiveRelay active(*this, relay);
        relay.start();
        migration_started_ = true;
        start_qemu_migration("unix:" + relay.socket_path());
        follow(relay);
        report_.channels = relay.streams().stats();
        if (report_.final_stats.status != "completed") {
            if (report_.error.empty())
                report_.error = relay.streams().error().value_or(cat(
                    "QEMU reports migration ", report_.final_stats.status,
                    report_.final_stats.error_desc.empty() ? "" : ": " + report_.final_stats.error_desc));
            throw Error(report_.error);
        }
        // QEMU has written everything. 'finish' goes out at once: the
        // destination waits for the last bytes and its QEMU itself, so the
        // guest resumes as soon as it is loaded, not a round trip later.
        finish_sent_ = true;
        try {
            report_.destination = ask({{"op", "finish"}, {"resume", opts_.resume_destination}});
        } catch (const DestinationRefused&) {
            dest_aborted_ = true;  // an answer: the destination runs nothing
            throw;
        }
        if (!relay.streams().wait_finished(relay.expected(), milliseconds(2000)))
            log::warn("relay channels still open after the destination confirmed: ",
                      relay.streams().error().value_or("closing"));
        report_.channels = relay.streams().stats();
        report_.control_reopened = link_->reopened();
        report_.final_stats = completed_figures(*qmp_, report_.final_stats);
        // A switch and its whole post-copy phase between two polls: QEMU's
        // figures tell (the destination's 'finish' then resumes the guest).
        if (postcopy_requested_ && !report_.postcopy.switched && report_.final_stats.postcopy_bytes > 0)
            report_.postcopy.switched = true;
        if (postcopy_requested_ && !report_.postcopy.switched)
            report_.postcopy.reason += "; asked for, but QEMU finished in pre-copy first";
        if (recovering_) {
            // The guest's blackout was the broken run's; it has run on the
            // destination since.
        } else if (report_.postcopy.switched && postcopy_answer_.is_object()) {
            // The guest stopped at the switch and ran again on the
            // destination once its devices were loaded, long before the
            // last page: that is its blackout.
            report_.blackout = measure_blackout(source_.stop_us, postcopy_answer_.value("loaded_us", int64_t{0}),
                                                postcopy_answer_.value("resumed_us", int64_t{0}), clock_);
        } else {
            report_.blackout = measure_blackout(source_.stop_us, report_.destination.value("loaded_us", int64_t{0}),
                                                report_.destination.value("resumed_us", int64_t{0}), clock_);
            add_phases(report_.blackout, source_.stop_us, source_.completed_us,
                       report_.destination.value("finish_received_us", int64_t{0}), clock_);
        }
        if (report_.postcopy.switched) {
            if (source_.completed_us && postcopy_wall_us_)
                report_.postcopy.phase_s = double(source_.completed_us - postcopy_wall_us_) / 1e6;
            report_.postcopy.requests = report_.final_stats.postcopy_requests;
            report_.postcopy.bytes = report_.final_stats.postcopy_bytes;
        }
        report_.source_state = qmp_->execute("query-status").value("status", "");
        report_.outcome = Outcome::completed;
    }

    // Before 'prepare' the control channel has no replacement, and a silent
    // outage is cheaper ridden out on TCP's own retransmissions than
    // reopened: TCP must not give up within the grace.
    transport::Options control_options() const {
        transport::Options o = opts_.transport;
        if (opts_.reconnect_grace.count() > 0)
            o.dead_peer_timeout = std::max(o.dead_peer_timeout, patience());
        return o;
    }

    FlowSettings flow_settings() const {
        FlowSettings f;
        f.chunk = opts_.chunk;
        f.window_bytes = opts_.window_bytes;
        // The expert's fixed downtime-limit turns the steering off, and with
        // it the window's sizing: the whole window from the start.
        if (opts_.qemu_downtime_limit_ms) f.start_window = 0;
        f.grace = opts_.reconnect_grace;
        f.compression = compression();
        // A segment unacknowledged for 20 round trips means a silent outage;
        // at least 2 s (a deep socket buffer on a slow path), at most the default.
        if (report_.link_rtt_ms > 0)
            f.stall = std::clamp(milliseconds(static_cast<int64_t>(20 * report_.link_rtt_ms)), milliseconds(2000),
                                 f.stall);
        return f;
    }

    // rmig's own compression. Automatic stays off when QEMU compresses
    // (--qemu-compress): its pages arrive compressed, and trying them again
    // per flow only costs the cores QEMU needs.
    engine::CompressionMode compression() const {
        if (opts_.compression == engine::CompressionMode::automatic && report_.settings.multifd_compression != "none")
            return engine::CompressionMode::none;
        return opts_.compression;
    }

    // The stall timeout, plus the reconnect grace: an outage within the grace
    // is no stall.
    milliseconds patience() const {
        if (opts_.reconnect_grace.count() == 0) return opts_.stall_timeout;
        return opts_.stall_timeout + opts_.reconnect_grace + FlowSettings{}.stall;
    }

    void connect_destination() {
        session_ = wire::random_session_id();
        report_.session = wire::to_hex(session_);
        wire::Hello hello;
        hello.role = wire::Role::source;
        hello.kind = wire::ChannelKind::control;
        hello.session = session_;
        hello.channel_count = opts_.settings.connections();
        link_ = std::make_unique<ControlLink>(
            security::connect(opts_.dest_uri, hello, control_options(), opts_.security), patience());
    }

    // A new control channel of the session, authenticated by its token; each
    // attempt takes the next path, so a dead one is not tried forever.
    std::unique_ptr<transport::Channel> reopen_control() {
        wire::Hello hello;
        hello.role = wire::Role::source;
        hello.kind = wire::ChannelKind::control;
        hello.session = session_;
        hello.channel_id = wire::kReopenedControlIds + ++control_reopens_;
        hello.channel_count = opts_.settings.connections();
        std::vector<std::string> uris{opts_.dest_uri};
        uris.insert(uris.end(), opts_.more_paths.begin(), opts_.more_paths.end());
        transport::Options o = control_options();
        o.connect_timeout = std::min(o.connect_timeout, transport::Millis(2000));
        return security::connect(uris[(control_reopens_ - 1) % uris.size()], hello, o, opts_.security);
    }

    // A few pings: the round trip, and the destination's clock against ours
    // (for the blackout, which spans both hosts' QMP timestamps).
    void sync_clocks() {
        std::vector<ClockSample> samples;
        double best_rtt = 0;
        for (int i = 0; i < kClockPings; ++i) {
            auto t0 = Clock::now();
            int64_t sent = wall_clock_us();
            json reply = ask({{"op", "ping"}});
            samples.push_back({sent, reply.value("clock_us", int64_t{0}), wall_clock_us()});
            double rtt = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            if (i == 0 || rtt < best_rtt) best_rtt = rtt;
        }
        report_.link_rtt_ms = best_rtt;
        clock_ = estimate_offset(samples);
        if (!clock_.known) log::warn("the destination does not report its clock: no blackout figure");
    }

    // QEMU 7.2 unregisters a failed migration's yank instance only when its
    // cleanup has run (after its multifd threads are joined), which can be
    // seconds after query-migrate already says "failed". A 'migrate' in that
    // window is refused with "duplicate yank instance" *and* leaves QEMU's
    // migration state stuck in "setup" for good. So wait for the cleanup
    // first, and never send 'migrate' while it is pending.
    void start_qemu_migration(const std::string& uri) {
        if (recovering_) {
            // The paused migration is QEMU's own: no new one to wait for.
            qmp_->execute("migrate", {{"uri", uri}, {"resume", true}});
            resumed_at_ = Clock::now();
            return;
        }
        auto until = Clock::now() + std::chrono::seconds(30);
        for (bool warned = false;;) {
            bool pending = false;
            try {
                for (auto& y : qmp_->execute("query-yank"))
                    pending = pending || y.value("type", "") == "migration";
            } catch (const QmpError&) {
                break;  // no query-yank in this QEMU: nothing to wait for
            }
            if (!pending) break;
            if (Clock::now() >= until)
                throw Error("the source QEMU has not finished cleaning up its previous migration "
                            "after 30 s (its yank instance is still registered); nothing was started");
            if (!warned) log::warn("waiting for the source QEMU to clean up its previous migration");
            warned = true;
            std::this_thread::sleep_for(milliseconds(100));
        }
        qmp_->execute("migrate", {{"uri", uri}});
    }

    json ask(const json& msg) { return link_->ask(msg); }

    [[noreturn]] void refuse() {
        report_.outcome = Outcome::refused;
        report_.error = "pre-migration checks failed: " + failures(report_.checks);
        throw Error(report_.error);
    }

    // Whether to switch to post-copy now, and why (docs/postcopy.md). QEMU's
    // dirty-sync-count is 1 once its first pass starts and grows by one per
    // pass over the guest's RAM.
    std::optional<std::string> postcopy_reason(const MigrationStats& st) {
        uint32_t passes = st.dirty_sync_count > 0 ? static_cast<uint32_t>(st.dirty_sync_count - 1) : 0;
        if (opts_.postcopy_after) {
            if (passes < *opts_.postcopy_after) return std::nullopt;
            return *opts_.postcopy_after == 0 ? std::string("asked for at once (--postcopy-after 0)")
                                              : cat("asked for after ", *opts_.postcopy_after, " pass",
                                                    *opts_.postcopy_after == 1 ? "" : "es", " (--postcopy-after)");
        }
        const ConvergenceView& v = report_.convergence.last;
        if (passes < 1 || !v.known || v.converging) {
            not_converging_polls_ = 0;
            return std::nullopt;
        }
        // Twice in a row: one poll's rates can be a blip (a short stall).
        if (++not_converging_polls_ < 2) return std::nullopt;
        return cat("pre-copy would not converge within the budget (the guest dirties ", format_rate(v.dirty_rate),
                   ", the link carries ", format_rate(v.link_rate), ")");
    }

    // QEMU stops the guest, sends its devices and the pages it still owes
    // on demand; the destination resumes the guest as soon as its devices
    // are in (unless told --no-resume), and answers when it runs.
    void switch_to_postcopy(const MigrationStats& st, const std::string& why, double elapsed_s) {
        log::info("switching to post-copy: ", why);
        qmp_->execute("migrate-start-postcopy");
        // QEMU only takes note: it switches at its next iteration (its
        // MIGRATION event wakes the poll loop, which then calls
        // on_switched), or finishes in pre-copy if what is left fits its
        // limit by then. Only a switch QEMU made counts.
        postcopy_requested_ = true;
        PostcopyReport& pc = report_.postcopy;
        pc.reason = why;
        pc.after_passes = st.dirty_sync_count > 0 ? static_cast<uint32_t>(st.dirty_sync_count - 1) : 0;
        pc.switched_at_s = elapsed_s;
        postcopy_wall_us_ = wall_clock_us();
    }

    // QEMU has switched: the destination loads the devices and resumes the
    // guest (unless told --no-resume), and answers when it runs.
    void on_switched(const SourceRelay& relay) {
        report_.postcopy.switched = true;
        bound_postcopy_queue(relay);
        postcopy_answer_ = ask({{"op", "postcopy"}, {"resume", opts_.resume_destination}});
    }

    // After the switch, without a preempt channel, what rmig holds in
    // flight is the guest's wait: a faulted page queues behind all of it.
    // So keep two round trips at the link rate (before the link was
    // measured: the socket buffer sized for its round trip), at least 1 MiB.
    void bound_postcopy_queue(const SourceRelay& relay) {
        // With a preempt channel faulted pages overtake the queue: leave it
        // deep, the background push needs it on a long link.
        if (report_.settings.postcopy_preempt) return;
        double bdp = link_rate_ * report_.link_rtt_ms / 1000.0;
        auto per = static_cast<uint64_t>(link_rate_ > 0 ? kWindowRoundTrips * bdp
                                                         : double(report_.link_tuning.socket_buffer));
        per = std::max<uint64_t>(per, 1 << 20);
        // Act on real changes only (a quarter), as bound_in_flight does.
        if (postcopy_queue_ && postcopy_queue_ == report_.in_flight_cap && per * 4 > postcopy_queue_ * 3 &&
            per * 4 < postcopy_queue_ * 5)
            return;
        postcopy_queue_ = per;
        relay.streams().bound_windows(per);
        if (relay.streams().limit_in_flight(per)) report_.in_flight_cap = per;
    }

    // Leaves QEMU's broken post-copy in postcopy-paused: up to 3 s for QEMU
    // to pause it by itself (the relay's failure shut its main connection
    // down, which it notices at its next write; a QEMU whose rmig died saw
    // its sockets close), then migrate-pause for one that does not (QEMU 7.2
    // may never notice, docs/postcopy.md), then up to 5 s for postcopy-paused.
    // Never migrate-pause at once: QEMU 7.2 dereferences the stream it has
    // just released (qemu_file_shutdown(NULL) in qmp_migrate_pause) when the
    // command lands while it is pausing by itself, and dies -- here with the
    // pages only the source holds.
    void pause_postcopy() {
        auto still_active = [this] {
            try {
                report_.final_stats = parse_migration_stats(qmp_->execute("query-migrate"));
            } catch (const std::exception&) {
                return false;
            }
            return report_.final_stats.status == "postcopy-active";
        };
        for (int i = 0; i < 30; ++i) {
            if (!still_active()) return;
            std::this_thread::sleep_for(milliseconds(100));
        }
        if (!still_active()) return;
        try {
            qmp_->execute("migrate-pause");
        } catch (const std::exception& e) {
            log::warn("migrate-pause on the source QEMU: ", e.what());
        }
        for (int i = 0; i < 50 && still_active(); ++i) std::this_thread::sleep_for(milliseconds(100));
    }

    // The source guest stops when switchover begins: QEMU's STOP event.
    void note_events(const std::vector<json>& events) {
        for (const auto& ev : events) source_.note(ev);
    }

    // Keeps QEMU's downtime-limit at what rmig's drain leaves of the user's
    // limit (downtime_budget.hpp). In flight: what the relay has sent and the
    // destination has not yet written into its QEMU.
    void steer_downtime(const SourceRelay& relay) {
        auto d = link_->delivered();
        if (d.at == Clock::time_point{}) return;  // no delivery report yet
        uint64_t sent = relay_bytes(relay.streams());
        drain_meter_.add(std::chrono::duration<double>(d.at - start_).count(), d.bytes);
        // The drain after QEMU's last byte runs at the link's rate with the
        // queues full: plan with the best rate seen (between rounds QEMU
        // sends less than the link takes) and the recent peak of what was in
        // flight (it decays by a tenth a poll, ~1 s).
        double rate = peak_rate_ = std::max(peak_rate_, drain_meter_.rate());
        uint64_t in_flight = sent > d.bytes ? sent - d.bytes : 0;
        in_flight_peak_ = std::max(double(in_flight), in_flight_peak_ * 0.9);
        DowntimeBudget b = plan_downtime(report_.settings.downtime_limit_ms, uint64_t(in_flight_peak_), rate,
                                         report_.link_rtt_ms + kResumeAllowanceMs);
        report_.in_flight_bytes = in_flight;
        report_.drain_rate = rate;
        bound_in_flight(relay, rate);
        uint64_t current = report_.budget.qemu_limit_ms;
        report_.budget = b;
        report_.budget.qemu_limit_ms = current;
        // Only real changes go to QEMU (each one is a QMP round trip).
        uint64_t diff = b.qemu_limit_ms > current ? b.qemu_limit_ms - current : current - b.qemu_limit_ms;
        if (diff < std::max<uint64_t>(2, current / 20)) return;
        try {
            qmp_->execute("migrate-set-parameters", {{"downtime-limit", b.qemu_limit_ms}});
            report_.budget.qemu_limit_ms = b.qemu_limit_ms;
        } catch (const QmpError& e) {
            log::warn("could not lower QEMU's downtime-limit: ", e.what());
        }
    }

    // What rmig sent at over the last seconds (send_meter_'s window).
    void measure_link(const Progress& p) {
        send_meter_.add(p.elapsed_s, p.relay_bytes);
        link_rate_ = send_meter_.rate();
    }

    // Measures the link as rmig sends, judges whether QEMU's pre-copy
    // converges, and hands QEMU's auto-converge the throttle planned from
    // that (convergence_steering.hpp). Only changes go to QEMU.
    void steer_throttle(const MigrationStats& st, const Progress& p) {
        // The rate over the last seconds, not the best ever seen: the first
        // second fills socket buffers far faster than a slow link drains them.
        measure_link(p);
        ConvergenceReport& c = report_.convergence;
        c.last = steering_.update(st, link_rate_, report_.budget.qemu_limit_ms);
        c.max_throttle = std::max(c.max_throttle, st.cpu_throttle_percentage);
        if (!c.steered) return;
        ThrottlePlan plan = steering_.plan();
        if (plan == c.throttle) return;
        try {
            qmp_->execute("migrate-set-parameters",
                          {{"cpu-throttle-initial", plan.initial}, {"cpu-throttle-increment", plan.increment}});
            c.throttle = plan;
        } catch (const QmpError& e) {
            log::warn("could not set QEMU's auto-converge throttle: ", e.what());
        }
    }

    // What rmig holds in flight drains after QEMU's last byte, inside the
    // guest's blackout: keep it to kDrainShare of the user's limit at the
    // measured rate, split over the channels (tcp: their send buffers), but
    // never below kMinInFlight (a channel needs some queue to keep the link
    // busy) nor above the configured socket buffer.
    void bound_in_flight(const SourceRelay& relay, double rate) {
        if (rate <= 0 || relay.streams().size() < relay.expected()) return;
        double total = rate * kDrainShare * double(report_.settings.downtime_limit_ms) / 1000.0;
        auto per = static_cast<uint64_t>(total / double(relay.expected()));
        per = std::clamp<uint64_t>(per, kMinInFlight,
                                   std::max<uint64_t>(kMinInFlight, uint64_t(opts_.transport.socket_buffer_bytes)));
        uint64_t current = report_.in_flight_cap ? report_.in_flight_cap : uint64_t(opts_.transport.socket_buffer_bytes);
        // Act on real changes only (a quarter), so that the cap does not chase noise.
        if (per * 4 > current * 3 && per * 4 < current * 5) return;
        // The send window holds what QEMU wrote and the destination has not
        // acknowledged: the same queue plus what is on the wire (a round
        // trip's worth, which drains by itself), and at least two segments.
        // Twice the round trip at the measured rate: the rate can only be
        // measured up to what the window lets through, so a window of
        // exactly one round trip would hold a long link at its first
        // measurement; with twice, it doubles per round until the link
        // itself is the limit (and at switchover drains in two round trips,
        // which the budget's drain share accounts for).
        double on_wire = kWindowRoundTrips * rate * report_.link_rtt_ms / 1000.0 / double(relay.expected());
        relay.streams().bound_windows(std::max<uint64_t>(per, 2 * opts_.chunk) + static_cast<uint64_t>(on_wire));
        // A socket's send buffer also holds what is on the wire until it is
        // acknowledged: without that share a long link's flows would be held
        // to a buffer's worth per round trip.
        if (relay.streams().limit_in_flight(per + static_cast<uint64_t>(on_wire))) report_.in_flight_cap = per;
    }

    void follow(SourceRelay& relay) {
        auto deadline = start_ + opts_.timeout;
        auto relay_failed_at = Clock::time_point::max();
        // A stalled link: sockets open, nothing moving. QEMU would wait forever
        // -- during switchover while holding its big lock, so that it does not
        // even answer QMP. The watchdog runs on its own thread and aborts the
        // relay, which fails QEMU's writes and frees it.
        std::mutex stall_mutex;
        std::string stall_error;
        StallGuard guard(
            patience(), [&relay] { return relay_traffic(relay.streams()); },
            [&] {
                std::string why = cat("no progress on the link for ",
                                      std::chrono::duration<double>(patience()).count(),
                                      " s (", relay_traffic(relay.streams()),
                                      " bytes moved): stalled channel; cancelled (see --stall-timeout)");
                {
                    std::lock_guard lock(stall_mutex);
                    stall_error = why;
                }
                relay.abort(why);
            });
        bool cancelled = false;
        for (;;) {
            MigrationStats st = report_.final_stats;
            bool answered = true;
            try {
                st = parse_migration_stats(qmp_->execute("query-migrate"));
            } catch (const LinkError& e) {
                // QEMU holds its lock (switchover) and answers late; the
                // watchdog and the deadline below still apply.
                if (std::string(e.what()).find("no reply") == std::string::npos) throw;
                log::warn("source QEMU is not answering QMP: ", e.what());
                answered = false;
            }
            note_events(qmp_->take_events());
            report_.final_stats = st;
            Progress p;
            p.qemu = st;
            p.relay_bytes = relay_bytes(relay.streams());
            p.channels_up = static_cast<uint32_t>(relay.streams().size());
            p.session = report_.session;
            p.streams = relay.streams().stats();
            auto sums = totals(p.streams);
            p.packed_in = sums.compression.in_bytes;
            p.packed_wire = sums.compression.wire_bytes;
            p.reconnects = sums.reconnects;
            p.channels = relay.expected();
            p.elapsed_s = std::chrono::duration<double>(Clock::now() - start_).count();
            report_.timeline.add(timeline_sample(p.elapsed_s, st, p.relay_bytes));
            if (answered && st.status == "active") steer_throttle(st, p);
            // Never onto a link that is down or being reopened: the switch
            // would turn a pre-copy failure (source resumed) into a split guest.
            bool link_ok = !relay.streams().error() && !relay.streams().reconnecting();
            if (answered && st.status == "active" && report_.settings.postcopy && !postcopy_requested_ && link_ok)
                if (auto why = postcopy_reason(st)) switch_to_postcopy(st, *why, p.elapsed_s);
            if (postcopy_requested_ && !report_.postcopy.switched && st.status.rfind("postcopy", 0) == 0)
                on_switched(relay);
            if (st.status == "postcopy-active") {
                report_.postcopy.requests = st.postcopy_requests;
                measure_link(p);
                bound_postcopy_queue(relay);
            }
            p.convergence = report_.convergence.last;
            p.convergence.throttle_percent = st.cpu_throttle_percentage;
            if (on_progress_) on_progress_(p);
            if (terminal(st.status)) break;
            // Post-copy broke (the link, the destination): both QEMUs wait
            // for a recovery; cancelling now would lose the guest.
            // A resumed one says so until QEMU's resume handshake is through.
            bool resuming = recovering_ && !relay.streams().error() && Clock::now() - resumed_at_ < kResumeHandshake;
            if (st.status == "postcopy-paused" && !resuming) {
                report_.error = cat("post-copy was interrupted (",
                                    relay.streams().error().value_or("QEMU says postcopy-paused"), ")");
                break;
            }
            if (answered && st.status == "active" && !opts_.qemu_downtime_limit_ms && !report_.postcopy.switched)
                steer_downtime(relay);
            auto now = Clock::now();
            if (relay.streams().error() && relay_failed_at == Clock::time_point::max())
                relay_failed_at = now;
            // Past the deadline: break the relay like any other failure.
            // Not after the switch: the guest runs on the destination and
            // waits on these pages; breaking the relay would freeze it. A
            // dead link is still caught by the stall watchdog.
            if (now >= deadline && report_.postcopy.switched && !deadline_warned_) {
                deadline_warned_ = true;
                log::warn("--timeout (", opts_.timeout.count(), " s) passed during post-copy: not cancelling, "
                          "the guest runs on the destination and needs the rest of its pages");
            }
            if (now >= deadline && !relay.streams().error() && !report_.postcopy.switched) {
                report_.error = cat("migration did not finish within ", opts_.timeout.count(),
                                    " s (see --timeout); cancelled");
                relay.abort(report_.error);
            }
            // The relay's failure closes QEMU's sockets, which fails the
            // migration within moments; QEMU's own failure path reactivates
            // the disks it inactivated for switchover. migrate_cancel only as
            // a last resort: cancelling QEMU 7.2 mid-switchover leaves its
            // disks inactive, and its next migration dies on an assertion.
            // Past the switch QEMU 7.2 may never notice a broken relay by
            // itself (its migration thread waits for the return path to
            // close, which now never does): pause it, so that it waits in
            // postcopy-paused, where a recovery can pick it up.
            if (report_.postcopy.switched && relay.streams().error()) {
                report_.error = cat("post-copy was interrupted: ", *relay.streams().error());
                pause_postcopy();
                break;
            }
            if (now - relay_failed_at > std::chrono::seconds(10) && !report_.postcopy.switched) {
                qmp_->execute("migrate_cancel");
                cancelled = true;
                wait_terminal();
                break;
            }
            // Wakes at once on QEMU's MIGRATION event (completed, failed), so
            // 'finish' leaves without waiting for the next poll.
            if (auto ev = qmp_->wait_event("MIGRATION", opts_.poll_interval)) note_events({*ev});
        }
        note_events(qmp_->take_events());
        // The STOP's wall clock on the timeline's steady clock: both start
        // together, and a run is far too short for them to drift apart.
        if (source_.stop_us)
            report_.timeline.set_switchover_stop(double(source_.stop_us - start_wall_us_) / 1e6);
        std::lock_guard lock(stall_mutex);
        if (auto reason = link_->peer_abort(); reason && report_.final_stats.status != "completed") {
            dest_aborted_ = true;
            report_.error = cat("the destination aborted: ", *reason);
        } else if (!stall_error.empty() && report_.final_stats.status != "completed") {
            report_.error = stall_error;
        } else if (cancelled && report_.error.empty()) {
            report_.error = relay.streams().error().value_or("cancelled");
        }
    }

    void wait_terminal() {
        for (int i = 0; i < 300; ++i) {
            report_.final_stats = parse_migration_stats(qmp_->execute("query-migrate"));
            if (terminal(report_.final_stats.status)) return;
            std::this_thread::sleep_for(milliseconds(100));
        }
    }

    // After a failure: QEMU resumes a guest that was running when migration
    // started; confirm it, and resume it ourselves if QEMU did not.
    void make_source_safe() {
        // Asked for and made by QEMU although rmig did not see it yet: the
        // destination may be running the guest all the same.
        if (postcopy_requested_ && !report_.postcopy.switched) {
            try {
                if (qmp_ && parse_migration_stats(qmp_->execute("query-migrate")).status.rfind("postcopy", 0) == 0)
                    report_.postcopy.switched = true;
            } catch (const std::exception&) {
                report_.postcopy.switched = true;  // cannot tell: assume the worst, never resume
            }
        }
        if (report_.postcopy.switched) {
            // The destination has run the guest since the switch: the
            // source's memory is stale. Never resume it here; pause its
            // migration where a recovery can take it up.
            try {
                if (qmp_ && parse_migration_stats(qmp_->execute("query-migrate")).status == "postcopy-active")
                    pause_postcopy();
            } catch (const std::exception& e) {
                log::warn("checking the source QEMU after the failed post-copy: ", e.what());
            }
            report_.outcome = Outcome::source_at_risk;
            note_source_state();
            report_.error += "; the migration had switched to post-copy, so the guest's memory is split between "
                             "both hosts: the source was NOT resumed (docs/postcopy.md, \"When post-copy breaks\")";
            return;
        }
        try {
            wait_terminal();
            auto status = [this] { return qmp_->execute("query-status").value("status", ""); };
            std::string state = status();
            // A failed switchover: query-migrate says "failed" while the run
            // state is still "finish-migrate" until QEMU's cleanup restarts the
            // guest itself; 'cont' is refused meanwhile ("Migration is not
            // finalized yet"). Give QEMU up to 10 s, then resume it ourselves.
            for (int i = 0; i < 100 && was_running_ && state == "finish-migrate"; ++i) {
                std::this_thread::sleep_for(milliseconds(100));
                state = status();
            }
            // QEMU completed and 'finish' (with resume) went out, but its answer
            // was lost: the destination may be running the guest now. Resuming
            // the source too would run it twice; leave that to the operator.
            // A refusal or an abort from the destination is an answer: it runs
            // nothing, and the source is resumed.
            if (was_running_ && state != "running" && finish_sent_ && opts_.resume_destination &&
                !dest_aborted_ && report_.final_stats.status == "completed") {
                report_.source_state = state;
                report_.outcome = Outcome::source_at_risk;
                report_.error += "; the destination may have resumed the guest ('finish' was sent, "
                                 "its answer lost): check it before resuming the source";
                return;
            }
            if (was_running_ && state != "running") {
                log::warn("source guest is '", state, "' after the failed migration; resuming it");
                qmp_->execute("cont");
                state = status();
            }
            // QEMU 7.2 can leave its disks inactivated by a failed switchover
            // (when a multifd thread marked the migration failed first); its
            // next migration then aborts on an assertion. 'cont' reactivates
            // them, so pause and continue the guest once (milliseconds).
            if (was_running_ && state == "running") {
                qmp_->execute("stop");
                qmp_->execute("cont");
                state = status();
            }
            report_.source_state = state;
            bool safe = !was_running_ || state == "running";
            report_.outcome = safe ? Outcome::failed : Outcome::source_at_risk;
        } catch (const std::exception& e) {
            report_.outcome = Outcome::source_at_risk;
            report_.error += cat(" (and checking the source QEMU failed: ", e.what(), ")");
        }
    }

    // Nothing was started on the source QEMU: say what state it is in.
    void note_source_state() {
        try {
            if (qmp_) report_.source_state = qmp_->execute("query-status").value("status", "");
        } catch (const std::exception& e) {
            log::warn("checking the source QEMU after the failure: ", e.what());
        }
    }

    // The relay the destination's abort must break, while there is one.
    class ActiveRelay {
    public:
        ActiveRelay(SourceRun& run, SourceRelay& relay) : run_(run) {
            {
                std::lock_guard lock(run_.relay_mutex_);
                run_.relay_ = &relay;
            }
            run_.link_->on_abort([&run](const std::string& why) {
                std::lock_guard lock(run.relay_mutex_);
                if (run.relay_) run.relay_->abort(cat("the destination aborted: ", why));
            });
            // Lost for good (not reopened within the grace, or no grace):
            // the destination rmig is gone or the link is down past the
            // grace, so no reconnecting flow can help; fail now.
            run_.link_->on_lost([&run](const std::string& why) {
                std::lock_guard lock(run.relay_mutex_);
                if (run.relay_ && !run.finish_sent_) run.relay_->abort(cat("the control channel was lost: ", why));
            });
        }
        ~ActiveRelay() {
            run_.link_->on_lost({});
            std::lock_guard lock(run_.relay_mutex_);
            run_.relay_ = nullptr;
        }

    private:
        SourceRun& run_;
    };

    const SourceOptions& opts_;
    const std::function<void(const Progress&)>& on_progress_;
    SourceReport report_;
    Clock::time_point start_;
    int64_t start_wall_us_ = 0;  // wall_clock_us() at start_
    std::unique_ptr<QmpClient> qmp_;
    std::mutex relay_mutex_;
    SourceRelay* relay_ = nullptr;  // guarded by relay_mutex_
    // After relay_mutex_: its reader thread (which may lock it) ends first.
    std::unique_ptr<ControlLink> link_;
    wire::SessionId session_{};
    ClockOffset clock_;
    SwitchoverEvents source_;  // the source QEMU's STOP and MIGRATION "completed"
    RateMeter drain_meter_{0.5};
    RateMeter send_meter_{3.0};
    double link_rate_ = 0;       // bytes/s, what rmig sent at lately
    ConvergenceSteering steering_;
    double peak_rate_ = 0;       // bytes/s, the best the destination took in
    double in_flight_peak_ = 0;  // bytes, decaying peak
    bool migration_started_ = false;
    std::atomic<bool> finish_sent_{false};
    bool dest_aborted_ = false;
    uint32_t control_reopens_ = 0;  // attempts; the reader thread's (ControlLink::resume_with)  // the destination said it failed or refused (so it runs nothing)
    bool was_running_ = false;
    std::set<std::string> dst_caps_;  // the destination QEMU's migration capabilities
    int64_t postcopy_wall_us_ = 0;    // when rmig told QEMU to switch
    uint64_t postcopy_queue_ = 0;     // per stream, as last bounded after the switch
    bool postcopy_requested_ = false;  // migrate-start-postcopy was sent
    bool recovering_ = false;          // this run resumes a broken post-copy (recover())
    Clock::time_point resumed_at_{};   // 'migrate' with resume was sent
    int not_converging_polls_ = 0;    // in a row, after the first pass
    bool deadline_warned_ = false;
    json postcopy_answer_;            // the destination's, once its guest ran
};

}  // namespace

SourceReport migrate(const SourceOptions& opts,
                     const std::function<void(const Progress&)>& on_progress) {
    return SourceRun(opts, on_progress).run();
}

}  // namespace rmig::qemu
