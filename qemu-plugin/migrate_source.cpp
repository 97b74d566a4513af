#include "qemu-plugin/migrate_source.hpp"

#include <atomic>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/temp_dir.hpp"
#include "transport/control_channel.hpp"
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
        ch.push_back({{"channel", c.channel}, {"sent_bytes", c.to_link}, {"received_bytes", c.from_link}});
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
            {"channels", ch},
            {"wall_s", wall_s},
            {"link_rtt_ms", link_rtt_ms},
            {"source_state", source_state},
            {"destination", destination}};
}

namespace {

uint64_t relay_bytes(const BridgeGroup& g) {
    uint64_t total = 0;
    for (auto& c : g.stats()) total += c.to_link;
    return total;
}

// Bytes moved in either direction, all channels: what the stall watchdog watches.
uint64_t relay_traffic(const BridgeGroup& g) {
    uint64_t total = 0;
    for (auto& c : g.stats()) total += c.to_link + c.from_link;
    return total;
}

bool terminal(const std::string& status) {
    return status == "completed" || status == "failed" || status == "cancelled";
}

class SourceRun {
public:
    SourceRun(const SourceOptions& o, const std::function<void(const Progress&)>& p)
        : opts_(o), on_progress_(p) {}

    SourceReport run() {
        start_ = Clock::now();
        try {
            execute();
        } catch (const std::exception& e) {
            if (report_.error.empty()) report_.error = e.what();
            if (report_.outcome == Outcome::completed) report_.outcome = Outcome::failed;
            if (migration_started_)
                make_source_safe();
            else
                note_source_state();
            if (control_) {
                tell_destination_abort();
                learn_destination_reason();
            }
        }
        report_.wall_s = std::chrono::duration<double>(Clock::now() - start_).count();
        return report_;
    }

private:
    void execute() {
        qmp_ = connect_qmp(opts_.qmp_path, "source");
        QemuInfo src = probe(*qmp_);
        connect_destination();
        auto t0 = Clock::now();
        ask({{"op", "ping"}});
        report_.link_rtt_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        QemuInfo dst = info_from_json(ask({{"op", "probe"}}).at("info"));
        report_.checks = check_pair(src, dst);
        auto status = parse_migration_stats(qmp_->execute("query-migrate")).status;
        bool idle = !(status == "setup" || status == "active" || status == "device" ||
                      status == "pre-switchover" || status == "cancelling");
        report_.checks.push_back({"source migration", idle,
                                  idle ? status : cat("a migration is already '", status, "'")});
        if (!all_ok(report_.checks)) refuse();

        MigrationSettings want = opts_.settings;
        json prepared = ask({{"op", "prepare"}, {"settings", to_json(want)}});
        apply_settings(*qmp_, want, Side::source);
        report_.settings = read_settings(*qmp_);
        MigrationSettings dst_settings = settings_from_json(prepared.at("settings"));
        report_.checks.push_back(check_settings(report_.settings, dst_settings));
        if (!all_ok(report_.checks)) refuse();
        was_running_ = src.run_state == "running";

        TempDir dir("rmig-relay", opts_.relay_dir);
        RelayConfig rc;
        rc.dest_uri = opts_.dest_uri;
        rc.session = session_;
        rc.channels = report_.settings.connections();
        rc.chunk = opts_.chunk;
        rc.transport = opts_.transport;
        rc.security = opts_.security;
        SourceRelay relay(dir.path() + "/source.sock", rc);
        relay.start();
        migration_started_ = true;
        start_qemu_migration("unix:" + relay.socket_path());
        follow(relay);
        report_.channels = relay.bridges().stats();
        if (report_.final_stats.status != "completed") {
            if (report_.error.empty())
                report_.error = relay.bridges().error().value_or(cat(
                    "QEMU reports migration ", report_.final_stats.status,
                    report_.final_stats.error_desc.empty() ? "" : ": " + report_.final_stats.error_desc));
            throw Error(report_.error);
        }
        // QEMU has sent everything; let the relay drain so the destination has it all.
        if (!relay.bridges().wait_finished(relay.expected(), milliseconds(15000)))
            log::warn("relay did not drain within 15 s after QEMU completed: ",
                      relay.bridges().error().value_or("channels still open"));
        report_.channels = relay.bridges().stats();
        finish_sent_ = true;
        report_.destination =
            ask({{"op", "finish"}, {"resume", opts_.resume_destination}});
        report_.source_state = qmp_->execute("query-status").value("status", "");
        report_.outcome = Outcome::completed;
    }

    void connect_destination() {
        session_ = wire::random_session_id();
        report_.session = wire::to_hex(session_);
        wire::Hello hello;
        hello.role = wire::Role::source;
        hello.kind = wire::ChannelKind::control;
        hello.session = session_;
        hello.channel_count = opts_.settings.connections();
        control_ = security::connect(opts_.dest_uri, hello, opts_.transport, opts_.security);
    }

    // QEMU 7.2 unregisters a failed migration's yank instance only when its
    // cleanup has run (after its multifd threads are joined), which can be
    // seconds after query-migrate already says "failed". A 'migrate' in that
    // window is refused with "duplicate yank instance" *and* leaves QEMU's
    // migration state stuck in "setup" for good. So wait for the cleanup
    // first, and never send 'migrate' while it is pending.
    void start_qemu_migration(const std::string& uri) {
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

    // One control request, bounded: a destination that sends nothing for the
    // stall timeout is cut off. While it works on a long request (finish) it
    // sends {"op":"working"} now and then, which keeps the request alive.
    json ask(const json& msg) {
        std::atomic<uint64_t> heard{0};
        StallGuard guard(opts_.stall_timeout, [&heard] { return heard.load(); },
                         [this] { control_->shutdown(); });
        std::string op = msg.value("op", "?");
        try {
            send_message(*control_, msg);
            for (;;) {
                json reply = recv_message(*control_);
                ++heard;
                if (reply.value("op", "") == "working") continue;
                if (!reply.value("ok", false))
                    throw Error(cat("destination refused '", op, "': ",
                                    reply.value("error", std::string("no reason given"))));
                return reply;
            }
        } catch (const std::exception& e) {
            // recv_message() names an abort frame "peer aborted": the
            // destination itself gave up, so it did not resume the guest.
            if (std::string(e.what()).find("peer aborted") != std::string::npos) dest_aborted_ = true;
            if (!guard.fired()) throw;
            throw Error(cat("the destination did not answer '", op, "' within ",
                            std::chrono::duration<double>(opts_.stall_timeout).count(),
                            " s: the link is stalled (see --stall-timeout)"));
        }
    }

    [[noreturn]] void refuse() {
        report_.outcome = Outcome::refused;
        report_.error = "pre-migration checks failed: " + failures(report_.checks);
        throw Error(report_.error);
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
            opts_.stall_timeout, [&relay] { return relay_traffic(relay.bridges()); },
            [&] {
                std::string why = cat("no progress on the link for ",
                                      std::chrono::duration<double>(opts_.stall_timeout).count(),
                                      " s (", relay_traffic(relay.bridges()),
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
            try {
                st = parse_migration_stats(qmp_->execute("query-migrate"));
            } catch (const LinkError& e) {
                // QEMU holds its lock (switchover) and answers late; the
                // watchdog and the deadline below still apply.
                if (std::string(e.what()).find("no reply") == std::string::npos) throw;
                log::warn("source QEMU is not answering QMP: ", e.what());
            }
            report_.final_stats = st;
            Progress p;
            p.qemu = st;
            p.relay_bytes = relay_bytes(relay.bridges());
            p.channels_up = static_cast<uint32_t>(relay.bridges().size());
            p.channels = relay.expected();
            p.elapsed_s = std::chrono::duration<double>(Clock::now() - start_).count();
            if (on_progress_) on_progress_(p);
            if (terminal(st.status)) break;
            auto now = Clock::now();
            if (relay.bridges().error() && relay_failed_at == Clock::time_point::max())
                relay_failed_at = now;
            // Past the deadline: break the relay like any other failure.
            if (now >= deadline && !relay.bridges().error()) {
                report_.error = cat("migration did not finish within ", opts_.timeout.count(),
                                    " s (see --timeout); cancelled");
                relay.abort(report_.error);
            }
            // The relay's failure closes QEMU's sockets, which fails the
            // migration within moments; QEMU's own failure path reactivates
            // the disks it inactivated for switchover. migrate_cancel only as
            // a last resort: cancelling QEMU 7.2 mid-switchover leaves its
            // disks inactive, and its next migration dies on an assertion.
            if (now - relay_failed_at > std::chrono::seconds(10)) {
                qmp_->execute("migrate_cancel");
                cancelled = true;
                wait_terminal();
                break;
            }
            std::this_thread::sleep_for(opts_.poll_interval);
        }
        std::lock_guard lock(stall_mutex);
        if (!stall_error.empty() && report_.final_stats.status != "completed") {
            report_.error = stall_error;
        } else if (cancelled && report_.error.empty()) {
            report_.error = relay.bridges().error().value_or("cancelled");
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

    // The destination may have failed first (a corrupted frame, its QEMU gone)
    // and sent its reason on the control channel; we only saw our link break.
    // Read it, briefly: a destination that says nothing is cut off.
    void learn_destination_reason() {
        if (migration_started_ == false && report_.outcome == Outcome::refused) return;
        StallGuard guard(milliseconds(1500), [] { return uint64_t{0}; }, [this] { control_->shutdown(); });
        try {
            for (int i = 0; i < 16; ++i) recv_message(*control_);  // skip late replies
        } catch (const std::exception& e) {
            std::string what = e.what();
            auto at = what.find("peer aborted: ");
            if (at != std::string::npos && what.find(report_.error) == std::string::npos)
                report_.error += cat("; the destination reports: ", what.substr(at + 14));
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

    void tell_destination_abort() {
        try {
            std::string why = report_.error;
            control_->send(wire::FrameType::abort, std::as_bytes(std::span(why.data(), why.size())));
        } catch (const std::exception&) {
            // The destination is already gone; it aborts on its own.
        }
    }

    const SourceOptions& opts_;
    const std::function<void(const Progress&)>& on_progress_;
    SourceReport report_;
    Clock::time_point start_;
    std::unique_ptr<QmpClient> qmp_;
    std::unique_ptr<transport::Channel> control_;
    wire::SessionId session_{};
    bool migration_started_ = false;
    bool finish_sent_ = false;
    bool dest_aborted_ = false;  // the destination said it failed (so it runs nothing)
    bool was_running_ = false;
};

}  // namespace

SourceReport migrate(const SourceOptions& opts,
                     const std::function<void(const Progress&)>& on_progress) {
    return SourceRun(opts, on_progress).run();
}

}  // namespace rmig::qemu
