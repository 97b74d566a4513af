#include "transport/dpdk/hello_gate.hpp"

#include <chrono>
#include <map>

#include "common/error.hpp"
#include "common/log_limiter.hpp"
#include "transport/admission.hpp"
#include "transport/dpdk/connection.hpp"
#include "transport/dpdk/endpoint.hpp"

namespace rmig::transport::dpdk {

namespace {

using Clock = std::chrono::steady_clock;

// How often pending connections are looked at: a hello waits at most this.
constexpr Millis kScan{2};

struct Pending {
    std::shared_ptr<Connection> conn;
    wire::HelloBytes buf{};
    size_t got = 0;
    Clock::time_point deadline;
};

}  // namespace

HelloGate::HelloGate(std::shared_ptr<Endpoint> ep, const Options& opts)
    : ep_(std::move(ep)), opts_(opts), ready_(opts.pending) {
    thread_ = std::thread([this] { run(); });
}

HelloGate::~HelloGate() {
    stop_ = true;
    thread_.join();
    for (Greeted& g : ready_.take_all()) close(*g.conn, "listener closed");
}

std::optional<Greeted> HelloGate::next(Millis timeout) { return ready_.pop_newest(timeout); }

void HelloGate::close(Connection& c, const std::string& why) {
    c.abort(why);
    ep_->remove(c);
}

void HelloGate::run() {
    log::Limiter dropped("dpdk connections dropped before their hello");
    Admission admission(opts_.pending);
    std::map<uint64_t, Pending> pending;
    uint64_t next_id = 0;
    auto drop = [&](uint64_t id, const std::string& what) {
        auto it = pending.find(id);
        if (it == pending.end()) return;
        dropped.warn("dropped ", it->second.conn->name(), ": ", what);
        close(*it->second.conn, what);
        admission.remove(id);
        pending.erase(it);
    };
    for (;;) {
        if (stop_) break;
        // New connections: as many as wait, then a scan of the pending ones.
        for (auto c = ep_->next_incoming(pending.empty() ? Millis(100) : kScan); c; c = ep_->next_incoming(Millis(0))) {
            uint64_t id = next_id++;
            for (uint64_t victim : admission.admit(id, c->peer_address()))
                drop(victim,
                     cat("too many connections waiting to say hello (", admission.limits().total, " in all, ",
                         admission.limits().per_peer, " per address); newer ones go first"));
            pending.emplace(id, Pending{std::move(c), {}, 0, Clock::now() + opts_.hello_timeout});
        }
        auto now = Clock::now();
        for (auto it = pending.begin(); it != pending.end();) {
            uint64_t id = it->first;
            Pending& p = it->second;
            ++it;  // `drop` may erase this one
            try {
                auto n = p.conn->read_now(p.buf.data() + p.got, p.buf.size() - p.got);
                if (n && *n == 0) {
                    drop(id, cat("connection ended after ", p.got, " of ", p.buf.size(), " hello bytes"));
                    continue;
                }
                if (n) p.got += *n;
            } catch (const Error& e) {
                drop(id, e.what());
                continue;
            }
            if (p.got == p.buf.size()) {
                std::string address = p.conn->peer_address();
                Greeted g{std::move(p.conn), p.buf};
                admission.remove(id);
                pending.erase(id);
                for (Greeted& v : ready_.push(std::move(g), address)) {
                    dropped.warn("dropped ", v.conn->name(), ": the listener's owner fell behind");
                    close(*v.conn, "the listener's owner fell behind");
                }
            } else if (p.deadline <= now) {
                drop(id, cat("no hello within ", opts_.hello_timeout.count(), " ms (", p.got, " of ", wire::kHelloSize,
                         " bytes)"));
            }
        }
    }
    for (auto& [id, p] : pending) close(*p.conn, "listener closed");
}

}  // namespace rmig::transport::dpdk
