#include "qemu-plugin/tunnel_send.hpp"

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"
#include "common/units.hpp"
#include "qemu-plugin/control_link.hpp"
#include "qemu-plugin/migration_metrics.hpp"
#include "qemu-plugin/source_relay.hpp"
#include "qemu-plugin/stall_guard.hpp"
#include "qemu-plugin/tunnel_protocol.hpp"
#include "security/secure_transport.hpp"

namespace rmig::qemu::tunnel {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often a running session says how far it got.
constexpr milliseconds kProgressEvery{10000};

// One migration through one path: a control channel to tunnel-receive and
// a relay that carries each QEMU connection handed to it as a stream.
class SendSession {
public:
    SendSession(const SendOptions& o, const std::string& path)
        : opts_(o), session_(wire::random_session_id()), started_(Clock::now()), relay_(relay_config()) {
        report_.role = "send";
        report_.socket = path;
        report_.name = checked_socket_name(base_name(path));
        report_.session = wire::to_hex(session_);
        report_.peer = opts_.dest_uris.front();
        wire::Hello hello;
        hello.role = wire::Role::source;
        hello.kind = wire::ChannelKind::control;
        hello.session = session_;
        hello.channel_count = kTunnelStreams;
        link_ = std::make_unique<ControlLink>(
            security::connect(opts_.dest_uris.front(), hello, opts_.transport, opts_.security), patience());
        // The destination's own failure (its QEMU gone, a corrupted frame)
        // ends ours at once; so does losing it, unless we are ending anyway.
        link_->on_abort([this](const std::string& why) { relay_.abort(cat("the destination aborted: ", why)); });
        link_->on_lost([this](const std::string& why) {
            if (!ending_) relay_.abort(cat("lost the control channel to the destination: ", why));
        });
        link_->ask(open_request(report_.name, relay_.streams().settings()));
        guard_ = std::make_unique<StallGuard>(
            patience(), [this] { return moved(); },
            [this] {
                relay_.abort(cat("nothing moved for ", std::chrono::duration<double>(patience()).count(),
                                 " s: stalled (see --stall-timeout)"));
            });
        metrics_ = std::make_unique<RelaySessionMetrics>(metrics::process_registry(), "tunnel-send", report_.session,
                                                         metrics::Labels{{"socket", report_.name}});
        log::info(report_.name, ": migration started (session ", report_.session.substr(0, 8), ")");
    }

    ~SendSession() {
        ending_ = true;
        guard_.reset();
        link_.reset();  // its reader may call into relay_: gone before it
    }

    void add(UniqueFd qemu) {
        if (!relay_.carry_next(std::move(qemu)))
            log::warn(report_.name, ": more than ", kTunnelStreams,
                      " connections in one migration; this one is closed");
    }

    // Every connection handed in has closed and was delivered, or the session failed.
    bool done() const {
        return relay_.streams().error() ||
               (relay_.carried() > 0 && relay_.streams().wait_finished(relay_.carried(), milliseconds(0)));
    }

    void abort(const std::string& why) { relay_.abort(why); }

    void update_metrics() { metrics_->update(relay_.streams().stats(), elapsed()); }

    void log_progress() {
        auto stats = relay_.streams().stats();
        uint64_t sent = 0;
        for (auto& s : stats) sent += s.to_link;
        log::info(report_.name, ": ", stats.size(), " connection(s), ", format_bytes(double(sent)), " sent, ",
                  format_rate(double(sent - last_sent_) / secs_since_log()));
        last_sent_ = sent;
        last_log_ = Clock::now();
    }

    // Tells the destination the migration ended (or why it failed).
    SessionReport end() {
        ending_ = true;
        guard_.reset();
        report_.seconds = elapsed();
        report_.streams = relay_.streams().stats();
        if (auto err = relay_.streams().error()) {
            report_.error = *err;
            link_->send_abort(*err);
        } else {
            try {
                link_->ask(end_request(relay_.carried()));
                report_.ok = true;
            } catch (const std::exception& e) {
                report_.error = cat("the destination did not confirm the end of the migration: ", e.what());
            }
        }
        metrics_->finish(report_.ok, report_.streams, report_.seconds);
        return report_;
    }

private:
    RelayConfig relay_config() const {
        RelayConfig c;
        c.dest_uris = opts_.dest_uris;
        c.session = session_;
        c.channels = kTunnelStreams;
        c.flows = opts_.flows;
        c.flow = opts_.flow;
        c.flow.start_window = 0;  // no blackout steering: the whole window at once
        c.transport = opts_.transport;
        c.security = opts_.security;
        return c;
    }

    double elapsed() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }

    milliseconds patience() const { return opts_.stall_timeout + opts_.flow.grace + opts_.flow.stall; }

    uint64_t moved() const {
        uint64_t n = relay_.carried();
        for (auto& s : relay_.streams().stats()) n += s.to_link + s.from_link;
        return n;
    }

public:
    milliseconds since_log() const { return std::chrono::duration_cast<milliseconds>(Clock::now() - last_log_); }

private:
    double secs_since_log() const {
        return std::max(1e-3, std::chrono::duration<double>(Clock::now() - last_log_).count());
    }

    const SendOptions& opts_;
    wire::SessionId session_;
    Clock::time_point started_;
    Clock::time_point last_log_ = Clock::now();
    uint64_t last_sent_ = 0;
    SessionReport report_;
    std::atomic<bool> ending_{false};
    SourceRelay relay_;
    std::unique_ptr<ControlLink> link_;  // after relay_: destroyed first
    std::unique_ptr<StallGuard> guard_;
    std::unique_ptr<RelaySessionMetrics> metrics_;  // its series go with the session
};

struct Shared {
    Shared(const SendOptions& o, std::stop_token s, const std::function<void(const SessionReport&)>& e)
        : opts(o), stop(std::move(s)), on_end(e) {}
    const SendOptions& opts;
    std::stop_token stop;
    const std::function<void(const SessionReport&)>& on_end;
    std::atomic<uint32_t> ended{0};
    std::mutex report_mutex;  // on_end runs for one session at a time

    bool over() const { return stop.stop_requested() || (opts.max_sessions && ended >= opts.max_sessions); }
    void finished(const SessionReport& r) {
        if (r.ok)
            log::info(r.summary());
        else
            log::error(r.summary());
        {
            std::lock_guard lock(report_mutex);
            if (on_end) on_end(r);
        }
        ++ended;
    }
};

void serve_path(Shared& shared, const std::string& path, UniqueFd listener) {
    std::unique_ptr<SendSession> current;
    auto finish = [&] {
        shared.finished(current->end());
        current.reset();
    };
    while (!shared.over()) {
        UniqueFd qemu;
        try {
            qemu = net::accept_for(listener.get(), milliseconds(200));
        } catch (const std::exception& e) {
            log::warn(path, ": ", e.what());
            std::this_thread::sleep_for(milliseconds(200));
            continue;
        }
        if (current && current->done()) finish();
        if (current) current->update_metrics();
        if (!qemu) {
            if (current && current->since_log() >= kProgressEvery) current->log_progress();
            continue;
        }
        if (!current) {
            try {
                current = std::make_unique<SendSession>(shared.opts, path);
            } catch (const std::exception& e) {
                // QEMU's connection closes with `qemu`: its migration fails
                // and the guest keeps running on this host.
                SessionReport r;
                r.role = "send";
                r.socket = path;
                r.name = base_name(path);
                r.peer = shared.opts.dest_uris.front();
                r.error = cat("could not open a session to ", r.peer, ": ", e.what(),
                              "; QEMU's connection was closed (its migration fails, the guest keeps running)");
                shared.finished(r);
                continue;
            }
        }
        current->add(std::move(qemu));
    }
    if (current) {
        if (!current->done()) current->abort("rmig tunnel-send is stopping");
        finish();
    }
    ::unlink(path.c_str());
}

}  // namespace

void serve_send(const SendOptions& opts, std::stop_token stop,
                const std::function<void(const SessionReport&)>& on_session_end) {
    if (opts.unix_paths.empty()) throw Error("tunnel-send: no UNIX path to listen on");
    if (opts.dest_uris.empty()) throw Error("tunnel-send: no destination address");
    std::vector<UniqueFd> listeners;
    for (const auto& path : opts.unix_paths) {
        checked_socket_name(base_name(path));  // the destination connects its socket of this name
        listeners.push_back(net::unix_listen(path, 64));
        log::info("listening on ", path, " for QEMU (its migration goes to ", opts.dest_uris.front(), ")");
    }
    Shared shared{opts, stop, on_session_end};
    {
        std::vector<std::jthread> paths;
        for (size_t i = 0; i < listeners.size(); ++i)
            paths.emplace_back([&shared, &opts, i, fd = std::move(listeners[i])]() mutable {
                serve_path(shared, opts.unix_paths[i], std::move(fd));
            });
    }
}

}  // namespace rmig::qemu::tunnel
