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

HelloGate::HelloGate(std::shared_ptr<Endpoint> ep, const Options& opts) : ep_(std::move(ep)), opts_(opts) {
    thread_ = std::thread([this] { run(); });
}

HelloGate::~HelloGate() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    thread_.join();
    for (auto& g : ready_) {
        g.conn->abort("listener closed");
        ep_->remove(*g.conn);
    }
}

std::optional<Greeted> HelloGate::next(Millis timeout) {
    std::unique_lock lk(mu_);
    if (!ready_cv_.wait_for(lk, timeout, [&] { return !ready_.empty(); })) return std::nullopt;
    Greeted g = std::move(ready_.back());  // newest first, as tcp's gate
    ready_.pop_back();
    return g;
}

HelloGate::Counters HelloGate::counters() const {
    std::lock_guard lk(mu_);
    return counters_;
}

void HelloGate::run() {
    log::Limiter dropped("dpdk connections dropped before their hello");
    Admission admission(opts_.pending);
    std::map<uint64_t, Pending> pending;
    uint64_t next_id = 0;
    auto count = [&](uint64_t Counters::*c) {
        std::lock_guard lk(mu_);
        ++(counters_.*c);
        counters_.pending = pending.size();
    };
    auto drop = [&](uint64_t id, uint64_t Counters::*why, const std::string& what) {
        auto it = pending.find(id);
        if (it == pending.end()) return;
        dropped.warn("dropped ", it->second.conn->name(), ": ", what);
        it->second.conn->abort(what);
        ep_->remove(*it->second.conn);
        admission.remove(id);
        pending.erase(it);
        count(why);
    };
    for (;;) {
        {
            std::lock_guard lk(mu_);
            if (stop_) break;
        }
        // New connections: as many as wait, then a scan of the pending ones.
        for (auto c = ep_->next_incoming(pending.empty() ? Millis(100) : kScan); c; c = ep_->next_incoming(Millis(0))) {
            uint64_t id = next_id++;
            for (uint64_t victim : admission.admit(id, c->peer_address()))
                drop(victim, &Counters::dropped_bound,
                     cat("too many connections waiting to say hello (", admission.limits().total, " in all, ",
                         admission.limits().per_peer, " per address); newer ones go first"));
            pending.emplace(id, Pending{std::move(c), {}, 0, Clock::now() + opts_.hello_timeout});
            count(&Counters::accepted);
        }
        auto now = Clock::now();
        for (auto it = pending.begin(); it != pending.end();) {
            uint64_t id = it->first;
            Pending& p = it->second;
            ++it;  // `drop` may erase this one
            try {
                auto n = p.conn->read_now(p.buf.data() + p.got, p.buf.size() - p.got);
                if (n && *n == 0) {
                    drop(id, &Counters::dropped_closed,
                         cat("connection ended after ", p.got, " of ", p.buf.size(), " hello bytes"));
                    continue;
                }
                if (n) p.got += *n;
            } catch (const Error& e) {
                drop(id, &Counters::dropped_closed, e.what());
                continue;
            }
            if (p.got == p.buf.size()) {
                Greeted g{std::move(p.conn), p.buf};
                admission.remove(id);
                pending.erase(id);
                std::lock_guard lk(mu_);
                if (ready_.size() >= opts_.pending.total) {
                    ready_.front().conn->abort("the listener's owner fell behind");
                    ep_->remove(*ready_.front().conn);
                    ready_.pop_front();
                }
                ready_.push_back(std::move(g));
                ++counters_.greeted;
                counters_.pending = pending.size();
                ready_cv_.notify_one();
            } else if (p.deadline <= now) {
                drop(id, &Counters::dropped_timeout,
                     cat("no hello within ", opts_.hello_timeout.count(), " ms (", p.got, " of ", wire::kHelloSize,
                         " bytes)"));
            }
        }
    }
    for (auto& [id, p] : pending) {
        p.conn->abort("listener closed");
        ep_->remove(*p.conn);
    }
}

}  // namespace rmig::transport::dpdk
