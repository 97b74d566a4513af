#include "qemu-plugin/tunnel_receive.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/log.hpp"
#include "qemu-plugin/dest_relay.hpp"
#include "qemu-plugin/migration_metrics.hpp"
#include "qemu-plugin/session_limits.hpp"
#include "qemu-plugin/stall_guard.hpp"
#include "qemu-plugin/tunnel_protocol.hpp"
#include "security/errors.hpp"
#include "security/secure_transport.hpp"
#include "transport/control_channel.hpp"

namespace rmig::qemu::tunnel {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using std::chrono::milliseconds;

// After the source's 'end': how long our side may still take to finish
// writing into QEMU and see it close.
constexpr milliseconds kEndWait{10000};

// One session on its own thread: the control channel's handshake, the open
// request, the relay into the named socket, and the end.
class ReceiveSession {
public:
    ReceiveSession(const ReceiveOptions& o, std::unique_ptr<transport::Incoming> in)
        : opts_(o), session_(in->hello().session), started_(Clock::now()) {
        report_.role = "receive";
        report_.session = wire::to_hex(session_);
        report_.peer = in->peer();
        thread_ = std::jthread([this, in = std::move(in)]() mutable { run(std::move(in)); });
    }

    ~ReceiveSession() { close("rmig tunnel-receive is stopping"); }

    // Stops the session and waits for its thread: ended() afterwards.
    void close(const std::string& why) {
        stop(why);
        thread_ = {};
        watcher_ = {};
    }

    const wire::SessionId& id() const { return session_; }
    bool ended() const { return ended_; }
    const SessionReport& report() const { return report_; }  // once ended()

    // A data channel of this session.
    void offer(std::unique_ptr<transport::Incoming> in) {
        std::lock_guard lock(mutex_);
        if (!relay_ || ended_) {
            in->refuse(wire::HelloStatus::unknown_session);
            return;
        }
        relay_->offer(std::move(in));
    }

    void stop(const std::string& why) {
        stopping_ = true;
        std::lock_guard lock(mutex_);
        if (relay_ && !ended_) relay_->abort(why);
        if (control_) control_->shutdown();
    }

private:
    void run(std::unique_ptr<transport::Incoming> in) {
        try {
            serve(std::move(in));
        } catch (const security::AuthError& e) {
            report_.error = e.what();  // turned away, and told why
        } catch (const std::exception& e) {
            std::optional<std::string> relay_error;
            {
                std::lock_guard lock(mutex_);
                if (relay_) relay_error = relay_->streams().error();
                if (relay_) relay_->abort(e.what());
            }
            report_.error = relay_error.value_or(e.what());
            send_abort(report_.error);
        }
        watcher_ = {};
        report_.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
        {
            std::lock_guard lock(mutex_);
            if (relay_) report_.streams = relay_->streams().stats();
        }
        if (metrics_) metrics_->finish(report_.ok, report_.streams, report_.seconds);
        metrics_.reset();
        ended_ = true;
    }

    void serve(std::unique_ptr<transport::Incoming> in) {
        wire::Hello reply = in->hello();
        reply.role = wire::Role::destination;
        {
            auto ch = in->accept(reply);
            std::lock_guard lock(mutex_);
            control_ = std::move(ch);
            if (stopping_) control_->shutdown();
        }
        json open;
        {
            // A peer that opens a session and says nothing holds no thread for long.
            StallGuard silent(opts_.transport.handshake_timeout, [] { return uint64_t{0}; },
                              [this] { control_->shutdown(); });
            open = transport::recv_message(*control_);
        }
        if (open.value("op", "") != "open")
            throw ProtocolError(cat("the session's first request is '", open.value("op", ""), "', not 'open'"));
        FlowSettings flow = flow_settings_from(open, opts_.chunk ? opts_.chunk : FlowSettings{}.chunk);
        report_.name = checked_socket_name(open.value("name", ""));
        report_.socket = opts_.socket_dir + "/" + report_.name;
        {
            std::lock_guard lock(mutex_);
            relay_ = std::make_unique<DestRelay>(report_.socket, session_, kTunnelStreams, flow,
                                                 opts_.transport.handshake_timeout, opts_.socket_wait);
        }
        metrics_ = std::make_unique<RelaySessionMetrics>(metrics::process_registry(), "tunnel-receive",
                                                         report_.session, metrics::Labels{{"socket", report_.name}});
        reply_ok({{"socket", report_.socket}});
        log::info(report_.name, ": migration from ", report_.peer, " (session ", report_.session.substr(0, 8),
                  ") into ", report_.socket);
        StallGuard guard(opts_.stall_timeout + flow.grace + flow.stall, [this] { return moved(); },
                         [this] { stop("nothing moved: stalled (see --stall-timeout)"); });
        watcher_ = std::jthread([this](std::stop_token st) { watch_relay(st); });
        for (;;) {
            json msg = transport::recv_message(*control_);  // an abort from the source throws here
            ++messages_;
            std::string op = msg.value("op", "");
            if (op != "end") {
                send({{"ok", false}, {"error", cat("unknown tunnel request '", op, "'")}});
                continue;
            }
            uint32_t n = msg.value("streams", 0u);
            if (n == 0 || n > kTunnelStreams || !relay_->streams().wait_finished(n, kEndWait))
                throw Error(cat("the source ended after ", n, " connection(s); here ", relay_->streams().size(),
                                " were set up and not all finished: ",
                                relay_->streams().error().value_or("still open")));
            uint64_t delivered = 0;
            for (auto& s : relay_->streams().stats()) delivered += s.from_link;
            reply_ok({{"delivered_bytes", delivered}});
            report_.ok = true;
            return;
        }
    }

    // Our side failed (the QEMU socket, a corrupted frame): tell the source
    // why, which ends its side; it only sees its link break otherwise.
    void watch_relay(std::stop_token st) {
        for (uint64_t tick = 0; !st.stop_requested() && !ended_; ++tick) {
            std::this_thread::sleep_for(milliseconds(50));
            std::optional<std::string> err;
            std::vector<ChannelStats> stats;
            {
                std::lock_guard lock(mutex_);
                err = relay_->streams().error();
                if (tick % 4 == 0) stats = relay_->streams().stats();
            }
            if (tick % 4 == 0)
                metrics_->update(stats, std::chrono::duration<double>(Clock::now() - started_).count());
            if (!err) continue;
            send_abort(*err);
            std::lock_guard lock(mutex_);
            control_->shutdown();
            return;
        }
    }

    uint64_t moved() const {
        uint64_t n = messages_;
        std::lock_guard lock(mutex_);
        for (auto& s : relay_->streams().stats()) n += s.to_link + s.from_link;
        return n;
    }

    void reply_ok(json msg) {
        msg["ok"] = true;
        send(msg);
    }

    void send(const json& msg) {
        std::lock_guard lock(send_mutex_);
        transport::send_message(*control_, msg);
    }

    void send_abort(const std::string& why) {
        std::lock_guard lock(send_mutex_);
        if (!control_) return;
        try {
            control_->send(wire::FrameType::abort, std::as_bytes(std::span(why.data(), why.size())));
        } catch (const std::exception&) {
            // The source is gone too.
        }
    }

    const ReceiveOptions& opts_;
    wire::SessionId session_;
    Clock::time_point started_;
    SessionReport report_;
    mutable std::mutex mutex_;  // relay_, control_ (set once each)
    std::mutex send_mutex_;
    std::unique_ptr<transport::Channel> control_;
    std::unique_ptr<DestRelay> relay_;
    std::atomic<uint64_t> messages_{0};
    std::atomic<bool> stopping_{false};
    std::atomic<bool> ended_{false};
    std::unique_ptr<RelaySessionMetrics> metrics_;  // from 'open' to the end; its series go with it
    std::jthread watcher_;
    std::jthread thread_;  // last: joined first
};

}  // namespace

void serve_receive(const ReceiveOptions& opts, std::stop_token stop,
                   const std::function<void(const std::string&)>& on_listening,
                   const std::function<void(const SessionReport&)>& on_session_end) {
    if (opts.socket_dir.empty()) throw Error("tunnel-receive: no socket directory");
    auto listener = security::listen(opts.listen_uri, opts.transport, opts.security);
    log::info("listening on ", listener->address(), "; sessions connect their sockets in ", opts.socket_dir);
    if (on_listening) on_listening(listener->address());
    std::vector<std::unique_ptr<ReceiveSession>> sessions;
    uint32_t ended = 0;
    auto end_session = [&](ReceiveSession& s) {
        const SessionReport& r = s.report();
        if (r.ok)
            log::info(r.summary());
        else
            log::error(r.summary());
        if (on_session_end) on_session_end(r);
        ++ended;
    };
    while (!stop.stop_requested() && !(opts.max_sessions && ended >= opts.max_sessions)) {
        std::erase_if(sessions, [&](const std::unique_ptr<ReceiveSession>& s) {
            if (!s->ended()) return false;
            end_session(*s);
            return true;
        });
        std::unique_ptr<transport::Incoming> in;
        try {
            in = listener->next(milliseconds(200));
        } catch (const std::exception& e) {
            log::warn("listener: ", e.what());
            continue;
        }
        if (!in) continue;
        const wire::Hello& h = in->hello();
        auto it = std::find_if(sessions.begin(), sessions.end(),
                               [&](const std::unique_ptr<ReceiveSession>& s) { return s->id() == h.session; });
        if (h.kind == wire::ChannelKind::data) {
            if (it == sessions.end()) {
                log::warn("refusing a data channel from ", in->peer(), ": no such session");
                in->refuse(wire::HelloStatus::unknown_session);
            } else {
                (*it)->offer(std::move(in));
            }
            continue;
        }
        if (h.channel_id != 0 || it != sessions.end()) {
            log::warn("refusing control channel ", h.channel_id, " from ", in->peer(),
                      ": a tunnel session has one control channel");
            in->refuse(wire::HelloStatus::bad_channel);
            continue;
        }
        if (sessions.size() >= opts.max_concurrent) {
            log::warn("refusing a session from ", in->peer(), ": ", sessions.size(), " sessions run already");
            in->refuse(wire::HelloStatus::busy);
            continue;
        }
        sessions.push_back(std::make_unique<ReceiveSession>(opts, std::move(in)));
    }
    for (auto& s : sessions) {
        s->close("rmig tunnel-receive is stopping");
        end_session(*s);
    }
}

}  // namespace rmig::qemu::tunnel
