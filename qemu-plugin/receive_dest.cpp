#include "qemu-plugin/receive_dest.hpp"

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/temp_dir.hpp"
#include "transport/control_channel.hpp"
#include "qemu-plugin/blackout.hpp"
#include "qemu-plugin/dest_relay.hpp"
#include "qemu-plugin/migration_settings.hpp"
#include "qemu-plugin/qemu_info.hpp"
#include "security/errors.hpp"
#include "security/secure_transport.hpp"
#include "qemu-plugin/stall_guard.hpp"

namespace rmig::qemu {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

json DestReport::to_json() const {
    return {{"ok", ok}, {"error", error}, {"session", session}, {"source", source_peer},
            {"final_state", final_state}, {"warning", warning}, {"postcopy_paused", postcopy_paused},
            {"recovered", recovered}};
}

namespace {

// QMP calls after a failure: QEMU may be gone or stuck, and we must not hang on it.
constexpr milliseconds kAfterFailure{2000};
// How often the destination tells the source what it has delivered to QEMU.
constexpr milliseconds kDeliveryReport{50};

class DestSession {
public:
    explicit DestSession(const DestOptions& o) : opts_(o) { patience_ = o.stall_timeout; }

    ~DestSession() {
        stop_ = true;
        watcher_ = {};
        acceptor_ = {};
        relay_.reset();
    }

    DestReport run(const std::function<void(const std::string&)>& on_listening) {
        started_ = Clock::now();
        deadline_ = started_ + opts_.timeout;
        try {
            qmp_ = connect_qmp(opts_.qmp_path, "destination");
            listener_ = security::listen(opts_.listen_uri, opts_.transport, opts_.security);
            if (on_listening) on_listening(listener_->address());
            accept_control();
            acceptor_ = std::jthread([this] { accept_channels(); });
            watcher_ = std::jthread([this] { watch_relay(); });
            StallGuard guard(opts_.stall_timeout, [this] { return progress(); },
                             [this] { stalled(); });
            guard_ = &guard;
            serve();
        } catch (const std::exception& e) {
            report_.ok = false;
            report_.error = stall_error().value_or(e.what());
            if (told_source_) {  // our relay failed first: that is the cause
                std::lock_guard lock(relay_mutex_);
                report_.error = relay_->streams().error().value_or(report_.error);
            }
            std::lock_guard lock(relay_mutex_);
            if (relay_) relay_->abort(report_.error);
        }
        if (!report_.ok) give_up_incoming();
        if (!report_.ok && !report_.postcopy_paused && qmp_) {
            // Whatever this session did, a QEMU still in postcopy-paused
            // (no source came to resume it) waits for a recovery.
            try {
                report_.postcopy_paused =
                    parse_migration_stats(qmp_->execute("query-migrate", {}, kAfterFailure)).status == "postcopy-paused";
            } catch (const std::exception&) {
            }
        }
        try {
            if (qmp_)
                report_.final_state =
                    qmp_->execute("query-status", {}, kAfterFailure).value("status", "");
        } catch (const std::exception&) {
            // QEMU exits when its incoming migration fails; or it is wedged (below).
            if (report_.final_state.empty()) report_.final_state = "gone";
        }
        return report_;
    }

private:
    // Changes while anything moves: control messages, relayed bytes, or our
    // own work on a request (which can take a while: finish waits for QEMU).
    uint64_t progress() {
        uint64_t p = messages_ + (busy_ ? ++busy_ticks_ : busy_ticks_.load());
        std::lock_guard lock(relay_mutex_);
        if (relay_)
            for (auto& c : relay_->streams().stats()) p += c.to_link + c.from_link;
        return p;
    }

    // When our side of the relay fails (a corrupted frame, QEMU gone), tell
    // the source why on the control channel -- it only sees its link break --
    // and end the session.
    // It also reports, every kDeliveryReport, how many bytes went into our
    // QEMU: the source steers QEMU's downtime budget by what is in flight.
    void watch_relay() {
        uint64_t reported = 0;
        while (!stop_ && !finished_) {
            std::this_thread::sleep_for(kDeliveryReport);
            std::optional<std::string> err;
            uint64_t delivered = 0;
            bool have_relay = false;
            std::vector<ChannelStats> stats;
            {
                std::lock_guard lock(relay_mutex_);
                if (relay_) {
                    have_relay = true;
                    err = relay_->streams().error();
                    delivered = delivered_bytes();
                    if (opts_.on_progress) stats = relay_->streams().stats();
                }
            }
            if (have_relay && opts_.on_progress)
                opts_.on_progress({report_.session, std::move(stats),
                                   std::chrono::duration<double>(Clock::now() - started_).count()});
            if (!err && have_relay && delivered != reported && !finished_ && reports_wanted_) {
                reported = delivered;
                try {
                    reply({{"op", "delivered"}, {"bytes", delivered}});
                } catch (const std::exception&) {
                    // serve() sees the broken control channel and ends the session.
                }
            }
            // Once 'cont' went out the guest may run here: a channel failing
            // while the relay winds down must not make the source resume too.
            if (!err || finished_ || resumed_) continue;
            told_source_ = true;
            try {
                std::lock_guard lock(send_mutex_);
                control()->send(wire::FrameType::abort, std::as_bytes(std::span(err->data(), err->size())));
            } catch (const std::exception&) {
                // The source is gone too.
            }
            final_ = true;  // our own failure: no waiting for a reopened control channel
            control()->shutdown();
            return;
        }
    }

    void reply(const json& msg) {
        std::lock_guard lock(send_mutex_);
        send_message(*control(), msg);
    }

    transport::Channel* control() const { return control_.load(); }

    // Owns every control connection of the session; the current one last.
    // A lost one is kept (shut down): the session's secret, which reopened
    // control channels and new data channels authenticate with, lives as
    // long as the first control channel.
    void adopt_control(std::unique_ptr<transport::Channel> ch) {
        std::lock_guard lock(control_mutex_);
        controls_.push_back(std::move(ch));
        control_ = controls_.back().get();
    }

    // The source reopened the control channel (its connection was lost): the
    // old one is shut down, so that serve() stops waiting on it, and serve()
    // takes this one.
    void hand_over_control(std::unique_ptr<transport::Channel> ch) {
        std::lock_guard lock(control_mutex_);
        if (spare_control_) spare_control_->shutdown();
        spare_control_ = std::move(ch);
        control()->shutdown();
        control_cv_.notify_all();
    }

    // serve()'s connection broke with `why`. After 'prepare' with a reconnect
    // grace the source reopens it within the grace (as it reopens flows);
    // otherwise, after our own failure or a stall, the session ends.
    void await_control(const std::string& why) {
        if (!resumable_ || final_ || stall_error() || stop_) throw LinkError(why);
        control()->shutdown();
        std::unique_lock lock(control_mutex_);
        if (!spare_control_) log::warn("control channel lost (", why, "); waiting up to ", grace_.count(),
                                       " ms for the source to reopen it");
        control_cv_.wait_for(lock, grace_, [&] { return spare_control_ || stop_ || final_ || stall_error(); });
        if (!spare_control_ || stop_ || final_ || stall_error())
            throw LinkError(cat("the control channel was lost (", why, ") and not reopened within the ",
                                grace_.count(), " ms grace"));
        controls_.push_back(std::move(spare_control_));
        control_ = controls_.back().get();
        log::info("control channel reopened by the source (", control()->name(), ")");
    }

    std::optional<std::string> stall_error() const {
        std::lock_guard lock(stall_mutex_);
        return stall_error_;
    }

    void stalled() {
        std::string why = cat("no progress from the source for ",
                           std::chrono::duration<double>(opts_.stall_timeout).count(),
                           " s: stalled link; giving up (see --stall-timeout)");
        log::error(why);
        {
            std::lock_guard lock(stall_mutex_);
            stall_error_ = why;
        }
        {
            std::lock_guard lock(relay_mutex_);
            if (relay_) relay_->abort(why);
        }
        control_cv_.notify_all();
        if (control()) control()->shutdown();  // wakes serve() out of its recv
    }

    // After a failed session in which QEMU was already waiting for the stream:
    // its incoming migration cannot be used again, and a guest it has not run
    // must never be resumed from a partial (or abandoned) copy. Quit it.
    void give_up_incoming() {
        if (!prepared_ || !qmp_) return;
        bool in_postcopy = postcopy_.load();
        if (!in_postcopy) {
            try {
                in_postcopy = parse_migration_stats(qmp_->execute("query-migrate", {}, kAfterFailure))
                                  .status.rfind("postcopy", 0) == 0;
            } catch (const std::exception&) {
                // Gone or wedged: the checks below handle it.
            }
        }
        if (in_postcopy) {
            // Past the switch the source holds no runnable guest either:
            // what is here is needed by a recovery (docs/postcopy.md).
            log::warn("post-copy was interrupted: leaving the destination QEMU paused (postcopy-paused) for a "
                      "recovery");
            // QEMU pauses by itself once its stream breaks, and the relay's
            // failure broke it: every connection into QEMU is shut down, a
            // silent link or not (StripedStream::abort). Never migrate-pause
            // it: QEMU 7.2 dereferences the stream it has just released
            // (qemu_file_shutdown(NULL) in qmp_migrate_pause) when the
            // command lands while it is pausing by itself, and dies with the
            // guest's newest state (seen: a killed `rmig migrate`, whose
            // `rmig receive` then had no QEMU left to recover).
            {
                std::lock_guard lock(relay_mutex_);
                if (relay_) relay_->abort(report_.error);
            }
            // Left for a recovery, whether QEMU says postcopy-paused yet or
            // not (a loaded host's QEMU can take a while): the next session
            // waits for it (prepare_recovery).
            report_.postcopy_paused = true;
            return;
        }
        try {
            std::string state = qmp_->execute("query-status", {}, kAfterFailure).value("status", "");
            if (state == "running") {
                log::error("destination guest is running although the session failed; leaving it");
                return;
            }
            log::warn("quitting the destination QEMU (state '", state, "'): the migration failed");
            qmp_->execute("quit", {}, kAfterFailure);
        } catch (const std::exception& e) {
            // Gone (QEMU exits by itself when its incoming migration fails), or
            // wedged: QEMU 7.2 can block its main loop forever waiting for a
            // multifd channel that broke during loading. It runs no guest
            // either way; say so rather than wait for it.
            if (std::string(e.what()).find("no reply") != std::string::npos) stop_wedged_qemu();
        }
    }

    // QEMU 7.2's destination can block its main loop for good after a multifd
    // channel broke during loading (QMP silent, no guest, and it can never
    // take another migration). It never ran the guest -- rmig resumes only a
    // loaded one -- so stopping it loses nothing: SIGTERM, then SIGKILL (a
    // wedged main loop does not act on SIGTERM).
    void stop_wedged_qemu() {
        report_.final_state = "unresponsive";
        if (resumed_) {
            // We sent 'cont': the guest may run there. Never kill that.
            log::warn("the destination QEMU does not answer QMP after rmig resumed its guest; leaving it");
            return;
        }
        int pid = qmp_->peer_pid();
        if (pid <= 0) {
            log::warn("the destination QEMU does not answer QMP (stuck in its failed incoming migration) and "
                      "its process is unknown; it runs no guest: kill it (docs/fault-injection.md)");
            return;
        }
        log::warn("the destination QEMU (pid ", pid, ") does not answer QMP: stuck in its failed incoming "
                  "migration, it runs no guest; stopping it");
        for (int sig : {SIGTERM, SIGKILL}) {
            if (::kill(pid, sig) != 0 && errno != ESRCH) {
                log::warn("cannot signal the destination QEMU (pid ", pid, "): ", std::strerror(errno),
                          "; kill it yourself");
                return;
            }
            for (int i = 0; i < 20 && !process_gone(pid); ++i) std::this_thread::sleep_for(milliseconds(100));
            if (process_gone(pid)) {
                report_.final_state = sig == SIGTERM ? "stopped (was unresponsive)" : "killed (was unresponsive)";
                return;
            }
        }
    }

    // Gone, or a zombie its parent has not reaped yet (it runs nothing).
    static bool process_gone(int pid) {
        if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
        std::ifstream stat(cat("/proc/", pid, "/stat"));
        std::string line;
        std::getline(stat, line);
        auto paren = line.rfind(')');
        return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
    }

    milliseconds left() const {
        auto l = std::chrono::duration_cast<milliseconds>(deadline_ - Clock::now());
        if (l.count() <= 0)
            throw Error(cat("session timed out after ", opts_.timeout.count(), " s (see --timeout)"));
        return l;
    }

    void accept_control() {
        for (;;) {
            auto in = listener_->next(std::min(left(), milliseconds(500)));
            if (!in) continue;
            if (in->hello().kind != wire::ChannelKind::control) {
                log::warn("refusing data channel from ", in->peer(), ": no session yet");
                in->refuse(wire::HelloStatus::unknown_session);
                continue;
            }
            session_ = in->hello().session;
            report_.session = wire::to_hex(session_);
            report_.source_peer = in->peer();
            wire::Hello reply = in->hello();
            reply.role = wire::Role::destination;
            try {
                adopt_control(in->accept(reply));
            } catch (const security::AuthError& e) {
                // A peer that cannot authenticate is turned away (it was told
                // why); keep waiting for the real source.
                log::warn(e.what());
                continue;
            }
            log::info("session ", report_.session.substr(0, 8), " from ", report_.source_peer);
            return;
        }
    }

    // Data channels, and anyone else knocking, while the session runs.
    void accept_channels() {
        while (!stop_) {
            std::unique_ptr<transport::Incoming> in;
            try {
                in = listener_->next(milliseconds(200));
            } catch (const std::exception& e) {
                log::warn("listener: ", e.what());
                continue;
            }
            if (!in) continue;
            if (in->hello().kind == wire::ChannelKind::control) {
                const wire::Hello& h = in->hello();
                if (resumable_ && h.session == session_ && h.channel_id >= wire::kReopenedControlIds) {
                    wire::Hello r = h;
                    r.role = wire::Role::destination;
                    try {
                        hand_over_control(in->accept(r));  // authenticated by the session's token
                    } catch (const std::exception& e) {
                        log::warn("reopened control channel from ", in->peer(), ": ", e.what());
                    }
                    continue;
                }
                log::warn("refusing a second control channel from ", in->peer(), ": busy");
                in->refuse(wire::HelloStatus::busy);
                continue;
            }
            std::lock_guard lock(relay_mutex_);
            if (!relay_ || in->hello().session != session_) {
                in->refuse(relay_ ? wire::HelloStatus::unknown_session : wire::HelloStatus::bad_channel);
                continue;
            }
            relay_->offer(std::move(in));
        }
    }

    void serve() {
        // The last request's number and answer: a request asked again on a
        // reopened control channel (its answer may have been lost with the
        // old one) is answered from here, not done twice.
        std::optional<int64_t> last_seq;
        json last_answer;
        std::string last_op;
        for (;;) {
            json msg;
            try {
                msg = recv_message(*control());
            } catch (const LinkError& e) {
                await_control(e.what());
                continue;
            } catch (const TruncatedError& e) {
                await_control(e.what());
                continue;
            }
            ++messages_;
            std::string op = msg.value("op", "");
            std::optional<int64_t> seq;
            if (msg.contains("seq") && msg["seq"].is_number_integer()) seq = msg["seq"].get<int64_t>();
            if (seq && seq == last_seq) {
                if (last_op != "finish")
                    send_answer(last_answer);
                else if (answer_finish(last_answer))
                    return;
                continue;
            }
            struct Busy {
                std::atomic<bool>& b;
                explicit Busy(std::atomic<bool>& f) : b(f) { b = true; }
                ~Busy() { b = false; }
            } busy(busy_);
            json result;
            try {
                if (op == "ping")
                    result = {{"clock_us", wall_clock_us()}};
                else if (op == "probe")
                    result = {{"info", to_json(probe(*qmp_))}, {"capabilities", migration_capabilities()}};
                else if (op == "postcopy")
                    result = postcopy(msg);
                else if (op == "prepare")
                    result = prepare(msg);
                else if (op == "finish")
                    result = finish(msg);
                else
                    throw Error(cat("unknown operation '", op, "'"));
            } catch (const LinkError&) {
                throw;
            } catch (const std::exception& e) {
                json refusal = {{"ok", false}, {"error", e.what()}};
                if (seq) refusal["seq"] = *seq;
                try {
                    reply(refusal);
                } catch (const std::exception&) {
                    // The source learns of it from the failed session.
                }
                if (op == "finish" || op == "prepare") throw;
                continue;
            }
            result["ok"] = true;
            if (seq) result["seq"] = *seq;
            if (op == "finish") finished_ = true;
            last_seq = seq;
            last_answer = result;
            last_op = op;
            if (op != "finish")
                send_answer(result);
            else if (answer_finish(result))
                return;
        }
    }

    // Answers 'finish'; true when the session is over. Once our guest was
    // resumed, the hand-over has happened: a lost answer is a warning on a
    // success (the source, unanswered, stays paused and says to check here).
    bool answer_finish(const json& answer) {
        try {
            if (!send_answer(answer)) return false;  // reopened: the source asks again
        } catch (const LinkError& e) {
            if (!resumed_) throw;
            report_.warning = cat("the guest runs here (rmig resumed it), but the answer to the source was lost (",
                                  e.what(), "): the source stays paused; stop it once you have checked the guest here");
            log::warn(report_.warning);
        }
        report_.ok = true;
        return true;
    }

    // Sends an answer; false if the connection broke and was reopened (the
    // source then asks again).
    bool send_answer(const json& answer) {
        try {
            reply(answer);
            return true;
        } catch (const LinkError& e) {
            await_control(e.what());
            return false;
        }
    }

    // Tells the source we are still at work on its request, so its stall
    // watchdog does not take a long 'finish' for a stalled link.
    void working() {
        auto now = Clock::now();
        auto every = std::min(milliseconds(1000), std::max(milliseconds(50), opts_.stall_timeout / 4));
        if (now - last_working_ < every) return;
        last_working_ = now;
        try {
            reply({{"op", "working"}});
        } catch (const LinkError&) {
            // A note; serve() finds the broken connection when it answers.
        }
    }

    json prepare(const json& msg) {
        MigrationSettings s = settings_from_json(msg.at("settings"));
        reports_wanted_ = msg.value("delivery_reports", false);
        FlowSettings flow = flow_settings(msg.value("flows", json::object()));
        if (msg.value("recover", false)) return prepare_recovery(s, flow);
        if (probe(*qmp_).run_state != "inmigrate")
            throw Error("destination QEMU is not waiting for a migration (start it with -incoming defer)");
        apply_settings(*qmp_, s, Side::destination);
        dir_ = std::make_unique<TempDir>("rmig-incoming", opts_.incoming_dir);
        std::string sock = dir_->path() + "/incoming.sock";
        qmp_->execute("migrate-incoming", {{"uri", "unix:" + sock}});
        prepared_ = true;
        {
            std::lock_guard lock(relay_mutex_);
            relay_ = std::make_unique<DestRelay>(sock, session_, s.connections(), flow,
                                                 opts_.transport.handshake_timeout);
        }
        return {{"settings", to_json(read_settings(*qmp_))}};
    }

    // A broken post-copy, resumed over this session (docs/postcopy.md, "When
    // post-copy breaks"): our QEMU waits in postcopy-paused with the guest
    // (running or not) and the pages it has; migrate-recover makes it take
    // the source QEMU's resumed stream on a new socket. Its settings stay
    // as they were: QEMU refuses changes during a migration.
    json prepare_recovery(const MigrationSettings& s, const FlowSettings& flow) {
        std::string status = parse_migration_stats(qmp_->execute("query-migrate")).status;
        // A broken post-copy QEMU that has not paused yet: its stream is cut
        // (the last session's relay shut it down, or died with its process),
        // so it pauses by itself within moments. Wait for it; never
        // migrate-pause it, which crashes a QEMU 7.2 that is pausing by
        // itself (give_up_incoming).
        for (int i = 0; i < 50 && status == "postcopy-active"; ++i) {
            std::this_thread::sleep_for(milliseconds(100));
            working();
            status = parse_migration_stats(qmp_->execute("query-migrate")).status;
        }
        if (status == "postcopy-active")
            throw Error("the destination QEMU's post-copy is still 'postcopy-active' 5 s after its stream was cut: "
                        "not paused (yet), nothing to recover from");
        if (status != "postcopy-paused")
            throw Error(cat("nothing to recover here: the destination QEMU's migration is '", status,
                            "', not postcopy-paused"));
        postcopy_ = true;  // from here on, whatever happens, keep this QEMU
        resumed_ = qmp_->execute("query-status").value("status", "") == "running";
        dir_ = std::make_unique<TempDir>("rmig-incoming", opts_.incoming_dir);
        std::string sock = dir_->path() + "/recover.sock";
        qmp_->execute("migrate-recover", {{"uri", "unix:" + sock}});
        prepared_ = true;
        report_.recovered = true;
        log::info("recovering the broken post-copy: the destination QEMU takes the resumed stream on ", sock);
        {
            std::lock_guard lock(relay_mutex_);
            relay_ = std::make_unique<DestRelay>(sock, session_, s.connections(), flow,
                                                 opts_.transport.handshake_timeout);
        }
        return {{"settings", to_json(read_settings(*qmp_))}, {"recovering", true}};
    }

    json migration_capabilities() {
        json names = json::array();
        for (auto& c : qmp_->execute("query-migrate-capabilities")) names.push_back(c.value("capability", ""));
        return names;
    }

    // The source switched to post-copy: our QEMU loads the devices, then
    // waits paused (-S) while its pages arrive on demand. Resume it as soon
    // as it is loaded -- the guest's blackout ends here, long before the
    // last page -- and answer when it runs.
    json postcopy(const json& msg) {
        bool resume = msg.value("resume", true);
        if (!relay_) throw Error("'postcopy' before 'prepare': no migration to switch");
        SwitchoverEvents events;
        std::string state, incoming;
        auto until = Clock::now() + patience_;
        for (;;) {
            state = ask_qemu("query-status").value("status", "");
            incoming = parse_migration_stats(ask_qemu("query-migrate")).status;
            // From here our QEMU holds part of a guest whose rest only the
            // source has: keep it whatever happens (give_up_incoming).
            if (incoming.rfind("postcopy", 0) == 0) postcopy_ = true;
            if (state != "inmigrate" || incoming == "failed") break;
            if (auto err = relay_->streams().error()) throw Error(cat("post-copy: ", *err));
            if (Clock::now() >= until)
                throw Error(cat("post-copy: the destination QEMU did not load the guest's devices within ",
                                std::chrono::duration<double>(patience_).count(), " s"));
            left();
            if (auto ev = qmp_->wait_event("MIGRATION", milliseconds(2))) events.note(*ev);
            working();
        }
        if (incoming == "failed") throw Error("post-copy: the destination QEMU failed to load the guest");
        bool resumed = false;
        if (resume && state != "running") {
            resumed_ = true;  // from here on the guest runs here: never stop this QEMU
            int64_t loaded_us = wall_clock_us();
            qmp_->execute("cont");
            resumed = true;
            if (auto ev = qmp_->wait_event("RESUME", milliseconds(2000))) events.note(*ev);
            state = ask_qemu("query-status").value("status", "");
            events.completed_us = loaded_us;  // loaded: when we saw it paused
        }
        return {{"state", state}, {"incoming", incoming}, {"resumed", resumed},
                {"loaded_us", events.completed_us}, {"resumed_us", events.resume_us}};
    }

    // The source's flow settings, within what this side accepts to hold.
    FlowSettings flow_settings(const json& asked) {
        FlowSettings f;
        f.chunk = opts_.chunk;
        f.window_bytes = std::clamp<uint64_t>(asked.value("window_bytes", uint64_t{f.window_bytes}), 1u << 20,
                                              kMaxFlowWindow);
        f.grace = milliseconds(std::clamp<int64_t>(asked.value("grace_ms", int64_t{0}), 0, kMaxReconnectGraceMs));
        if (f.grace.count() > 0) {
            grace_ = f.grace;
            resumable_ = true;
            // An outage within the grace is no stall, on either side.
            patience_ = opts_.stall_timeout + f.grace + f.stall;
            if (guard_) guard_->extend_to(patience_);
            qmp_patience_ = std::max(qmp_patience_, f.grace + f.stall + std::chrono::seconds(10));
        }
        return f;
    }

    // A query to our QEMU during the migration. QEMU 7.2's main thread waits
    // for every multifd channel at each sync, holding its lock, so while a
    // flow reconnects QMP is silent: wait through the grace then, and only then.
    json ask_qemu(const std::string& cmd) {
        auto give_up = Clock::now() + qmp_patience_;
        for (;;) {
            try {
                return qmp_->execute(cmd);
            } catch (const QmpTimeout&) {
                if (!relay_ || !relay_->streams().reconnecting() || Clock::now() >= give_up) throw;
                log::info("the destination QEMU is busy while a connection comes back; still waiting");
            }
        }
    }

    // Written into our QEMU so far, all channels; relay_ must exist.
    uint64_t delivered_bytes() const {
        uint64_t n = 0;
        for (auto& c : relay_->streams().stats()) n += c.from_link;
        return n;
    }

    // The source's QEMU has written everything. Wait for the last bytes and
    // for our QEMU to load them -- woken by its MIGRATION event, not a poll --
    // then resume it at once. A refusal comes as soon as loading cannot end:
    // the relay failed, QEMU failed, or no byte arrived for the stall timeout.
    json finish(const json& msg) {
        int64_t asked_us = wall_clock_us();
        bool resume = msg.value("resume", true);
        std::string state, incoming;
        SwitchoverEvents events;  // MIGRATION "completed": loaded; RESUME
        uint64_t last = delivered_bytes();
        auto moved_at = Clock::now();
        std::string why_not;
        for (;;) {
            state = ask_qemu("query-status").value("status", "");
            // In post-copy the guest runs (or waits, --no-resume) before
            // its last page is in: loaded means QEMU says completed.
            if (postcopy_) incoming = parse_migration_stats(ask_qemu("query-migrate")).status;
            if (state != "inmigrate" && (!postcopy_ || incoming == "completed" || incoming == "failed")) break;
            if (postcopy_ && incoming == "postcopy-paused") {
                why_not = "post-copy is paused (the link or the source broke)";
                break;
            }
            if (auto err = relay_->streams().error()) {
                why_not = *err;
                break;
            }
            if (!postcopy_) incoming = parse_migration_stats(ask_qemu("query-migrate")).status;  // asked above otherwise
            if (incoming == "failed") break;
            uint64_t now_delivered = delivered_bytes();
            if (now_delivered != last) {
                last = now_delivered;
                moved_at = Clock::now();
            } else if (Clock::now() - moved_at >= patience_) {
                why_not = cat("no byte arrived for ", std::chrono::duration<double>(patience_).count(),
                              " s (see --stall-timeout)");
                break;
            }
            left();  // the session's own deadline
            if (auto ev = qmp_->wait_event("MIGRATION", milliseconds(10))) events.note(*ev);
            working();
        }
        for (auto& ev : qmp_->take_events()) events.note(ev);
        incoming = parse_migration_stats(ask_qemu("query-migrate")).status;
        if (state == "inmigrate" || incoming == "failed" || (postcopy_ && incoming != "completed"))
            throw Error(cat("destination QEMU did not finish loading the guest (state '", state,
                            "', incoming migration '", incoming, "')", why_not.empty() ? "" : ": " + why_not));
        bool resumed = false;
        if (resume && state != "running") {
            resumed_ = true;  // from here on the guest may run: never stop this QEMU
            qmp_->execute("cont");
            resumed = true;
            if (auto ev = qmp_->wait_event("RESUME", milliseconds(2000))) events.note(*ev);
            state = ask_qemu("query-status").value("status", "");
        }
        // The relay's last acknowledgements; the guest runs already.
        if (!relay_->streams().wait_finished(relay_->expected(), milliseconds(2000)))
            log::warn("channels still open after the guest was loaded: ",
                      relay_->streams().error().value_or("waiting for QEMU to close them"));
        return {{"state", state}, {"incoming", incoming}, {"resumed", resumed},
                {"channels", relay_->streams().size()}, {"loaded_us", events.completed_us}, {"resumed_us", events.resume_us},
                {"finish_received_us", asked_us}};
    }

    const DestOptions& opts_;
    DestReport report_;
    Clock::time_point started_;
    Clock::time_point deadline_;
    std::unique_ptr<QmpClient> qmp_;
    std::unique_ptr<transport::Listener> listener_;
    std::mutex control_mutex_;
    std::condition_variable control_cv_;
    std::vector<std::unique_ptr<transport::Channel>> controls_;  // guarded by control_mutex_
    std::unique_ptr<transport::Channel> spare_control_;          // reopened, not yet taken by serve()
    std::atomic<transport::Channel*> control_{nullptr};
    std::atomic<bool> resumable_{false};  // 'prepare' set a reconnect grace
    std::atomic<bool> final_{false};      // our relay failed: the session ends with the control channel
    milliseconds grace_{0};
    wire::SessionId session_{};
    std::unique_ptr<TempDir> dir_;
    std::mutex relay_mutex_;
    std::unique_ptr<DestRelay> relay_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> prepared_{false};
    std::atomic<bool> reports_wanted_{false};
    StallGuard* guard_ = nullptr;  // run()'s, while it runs
    milliseconds patience_{};  // the stall timeout, plus the reconnect grace if any
    milliseconds qmp_patience_{10000};  // QMP while a flow reconnects: the grace and then some
    std::atomic<bool> postcopy_{false};      // the source switched to post-copy
    std::atomic<bool> resumed_{false};         // 'cont' was sent to our QEMU  // the source asked for 'delivered' reports
    std::atomic<bool> finished_{false};      // 'finish' answered: the relay's job is done
    std::atomic<bool> told_source_{false};   // watch_relay() sent our relay's error
    std::mutex send_mutex_;                  // serve() and watch_relay() both send on control
    Clock::time_point last_working_{};
    std::atomic<bool> busy_{false};
    std::atomic<uint64_t> messages_{0}, busy_ticks_{0};
    mutable std::mutex stall_mutex_;
    std::optional<std::string> stall_error_;  // set by the guard before it wakes serve()
    std::jthread acceptor_, watcher_;
};

}  // namespace

DestReport receive(const DestOptions& opts,
                   const std::function<void(const std::string&)>& on_listening) {
    return DestSession(opts).run(on_listening);
}

}  // namespace rmig::qemu
