#include "qemu-plugin/receive_dest.hpp"

#include <atomic>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/temp_dir.hpp"
#include "qemu-plugin/control_protocol.hpp"
#include "qemu-plugin/dest_relay.hpp"
#include "qemu-plugin/migration_settings.hpp"
#include "qemu-plugin/qemu_info.hpp"
#include "security/errors.hpp"

namespace rmig::qemu {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

json DestReport::to_json() const {
    return {{"ok", ok}, {"error", error}, {"session", session}, {"source", source_peer},
            {"final_state", final_state}};
}

namespace {

class DestSession {
public:
    explicit DestSession(const DestOptions& o) : opts_(o) {}

    ~DestSession() {
        stop_ = true;
        acceptor_ = {};
        relay_.reset();
    }

    DestReport run(const std::function<void(const std::string&)>& on_listening) {
        deadline_ = Clock::now() + opts_.timeout;
        try {
            qmp_ = connect_qmp(opts_.qmp_path, "destination");
            listener_ = transport::listen(opts_.listen_uri, opts_.transport);
            if (on_listening) on_listening(listener_->address());
            accept_control();
            acceptor_ = std::jthread([this] { accept_channels(); });
            serve();
        } catch (const std::exception& e) {
            report_.ok = false;
            report_.error = e.what();
            std::lock_guard lock(relay_mutex_);
            if (relay_) relay_->abort(report_.error);
        }
        try {
            if (qmp_) report_.final_state = qmp_->execute("query-status").value("status", "");
        } catch (const std::exception&) {
            report_.final_state = "gone";  // QEMU exits when its incoming migration fails
        }
        return report_;
    }

private:
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
                control_ = in->accept(reply);
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
        for (;;) {
            json msg = recv_message(*control_);
            std::string op = msg.value("op", "");
            json reply;
            try {
                if (op == "ping")
                    reply = json::object();
                else if (op == "probe")
                    reply = {{"info", to_json(probe(*qmp_))}};
                else if (op == "prepare")
                    reply = prepare(msg);
                else if (op == "finish")
                    reply = finish(msg);
                else
                    throw Error(cat("unknown operation '", op, "'"));
            } catch (const LinkError&) {
                throw;
            } catch (const std::exception& e) {
                send_message(*control_, {{"ok", false}, {"error", e.what()}});
                if (op == "finish" || op == "prepare") throw;
                continue;
            }
            reply["ok"] = true;
            send_message(*control_, reply);
            if (op == "finish") {
                report_.ok = true;
                return;
            }
        }
    }

    json prepare(const json& msg) {
        MigrationSettings s = settings_from_json(msg.at("settings"));
        if (probe(*qmp_).run_state != "inmigrate")
            throw Error("destination QEMU is not waiting for a migration (start it with -incoming defer)");
        apply_settings(*qmp_, s, Side::destination);
        dir_ = std::make_unique<TempDir>("rmig-incoming", opts_.incoming_dir);
        std::string sock = dir_->path() + "/incoming.sock";
        qmp_->execute("migrate-incoming", {{"uri", "unix:" + sock}});
        {
            std::lock_guard lock(relay_mutex_);
            relay_ = std::make_unique<DestRelay>(sock, session_, s.connections(), opts_.chunk);
        }
        return {{"settings", to_json(read_settings(*qmp_))}};
    }

    json finish(const json& msg) {
        bool resume = msg.value("resume", true);
        if (!relay_->bridges().wait_finished(relay_->expected(), milliseconds(15000)))
            log::warn("channels still open after the source finished: ",
                      relay_->bridges().error().value_or("waiting for QEMU to close them"));
        // QEMU leaves "inmigrate" only when it has loaded the whole stream.
        std::string state;
        for (int i = 0; i < 300; ++i) {
            state = qmp_->execute("query-status").value("status", "");
            if (state != "inmigrate") break;
            std::this_thread::sleep_for(milliseconds(100));
        }
        std::string incoming = parse_migration_stats(qmp_->execute("query-migrate")).status;
        if (state == "inmigrate" || incoming == "failed")
            throw Error(cat("destination QEMU did not finish loading the guest (state '", state,
                            "', incoming migration '", incoming, "')"));
        bool resumed = false;
        if (resume && state != "running") {
            qmp_->execute("cont");
            resumed = true;
            state = qmp_->execute("query-status").value("status", "");
        }
        return {{"state", state}, {"incoming", incoming}, {"resumed", resumed},
                {"channels", relay_->bridges().size()}};
    }

    const DestOptions& opts_;
    DestReport report_;
    Clock::time_point deadline_;
    std::unique_ptr<QmpClient> qmp_;
    std::unique_ptr<transport::Listener> listener_;
    std::unique_ptr<transport::Channel> control_;
    wire::SessionId session_{};
    std::unique_ptr<TempDir> dir_;
    std::mutex relay_mutex_;
    std::unique_ptr<DestRelay> relay_;
    std::atomic<bool> stop_{false};
    std::jthread acceptor_;
};

}  // namespace

DestReport receive(const DestOptions& opts,
                   const std::function<void(const std::string&)>& on_listening) {
    return DestSession(opts).run(on_listening);
}

}  // namespace rmig::qemu
