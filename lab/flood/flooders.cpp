#include "lab/flood/flooders.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "common/args.hpp"
#include "common/error.hpp"
#include "common/socket.hpp"
#include "common/unique_fd.hpp"
#include "security/errors.hpp"
#include "security/secure_transport.hpp"
#include "wire/handshake.hpp"
#ifdef RMIG_HAVE_RDMA
#include <rdma/rdma_cma.h>

#include <set>
#endif
#ifdef RMIG_HAVE_DPDK
#include "transport/dpdk/connection.hpp"
#include "transport/dpdk/dpdk_uri.hpp"
#include "transport/dpdk/endpoint.hpp"
#endif

namespace rmig::lab {

namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

void raise_fd_limit() {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }
}

wire::Hello stranger_hello(bool auth, bool encrypt) {
    wire::Hello h;
    h.kind = wire::ChannelKind::control;
    h.session = wire::random_session_id();
    if (auth) h.caps = wire::kCapAuth | (encrypt ? wire::kCapEncrypt : 0u);
    return h;
}

std::string scheme_rest(const std::string& uri, std::string* scheme) {
    auto colon = uri.find(':');
    if (colon == std::string::npos) throw UsageError(cat("--to ", uri, ": expected tcp:HOST:PORT or dpdk:DEVARGS"));
    *scheme = uri.substr(0, colon);
    return uri.substr(colon + 1);
}

// A tcp connection from `from` (empty: the kernel's choice), within `timeout`.
UniqueFd connect_from(const net::HostPort& to, const std::string& from, Millis timeout) {
    if (from.empty()) return net::tcp_connect(to, timeout);
    sockaddr_in local{}, remote{};
    local.sin_family = remote.sin_family = AF_INET;
    if (::inet_pton(AF_INET, from.c_str(), &local.sin_addr) != 1 ||
        ::inet_pton(AF_INET, to.host.c_str(), &remote.sin_addr) != 1)
        throw UsageError(cat("--from ", from, ": IPv4 addresses only, to an IPv4 listener"));
    remote.sin_port = htons(to.port);
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) throw_errno("socket");
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) throw_errno(cat("bind to ", from));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0 && errno != EINPROGRESS)
        throw_errno(cat("connect to ", to.str()));
    pollfd p{fd.get(), POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1 ||
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        throw Error(cat("connect to ", to.str(), " from ", from, " failed"));
    int fl = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

}  // namespace

const char* to_string(FloodKind k) {
    switch (k) {
        case FloodKind::silent: return "silent";
        case FloodKind::partial_hello: return "partial-hello";
        case FloodKind::stalled_auth: return "stalled-auth";
        case FloodKind::wrong_key: return "wrong-key";
    }
    return "?";
}

FloodKind parse_flood_kind(const std::string& s) {
    for (auto k : {FloodKind::silent, FloodKind::partial_hello, FloodKind::stalled_auth, FloodKind::wrong_key})
        if (s == to_string(k)) return k;
    throw UsageError(cat("--kind ", s, ": expected silent, partial-hello, stalled-auth or wrong-key"));
}

struct Flood::Impl {
    FloodSpec spec;
    std::shared_ptr<FloodStats> stats;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;

    // tcp: one thread holds every connection and replaces the dropped ones.
    void tcp_holder(const std::string& host_port) {
        auto hp = net::parse_host_port(host_port);
        std::vector<UniqueFd> fds;
        auto open_one = [&]() -> UniqueFd {
            try {
                UniqueFd fd = connect_from(hp, spec.from, Millis(2000));
                stats->opened++;
                if (spec.kind == FloodKind::partial_hello) {
                    auto b = wire::encode_hello(stranger_hello(false, false), false);
                    if (::write(fd.get(), b.data(), 1) != 1) return UniqueFd();
                } else if (spec.kind == FloodKind::stalled_auth) {
                    auto b = wire::encode_hello(stranger_hello(true, spec.encrypt), false);
                    if (::write(fd.get(), b.data(), b.size()) != ssize_t(b.size())) return UniqueFd();
                }
                return fd;
            } catch (const Error&) {
                stats->failed_connect++;
                std::this_thread::sleep_for(Millis(5));
                return UniqueFd();
            }
        };
        std::vector<pollfd> pfds;
        auto next_open = Clock::now();
        while (!stop) {
            while (fds.size() < spec.connections && !stop) {
                if (spec.rate > 0) {
                    next_open = std::max(next_open, Clock::now() - Millis(100));
                    std::this_thread::sleep_until(next_open);
                    next_open += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1 / spec.rate));
                }
                auto fd = open_one();
                if (fd) fds.push_back(std::move(fd));
                stats->holding = fds.size();
            }
            pfds.clear();
            for (auto& f : fds) pfds.push_back({f.get(), POLLIN, 0});
            if (::poll(pfds.data(), pfds.size(), 50) <= 0) continue;
            std::vector<UniqueFd> kept;
            for (size_t i = 0; i < fds.size(); ++i) {
                bool gone = pfds[i].revents & (POLLHUP | POLLERR);
                if (!gone && (pfds[i].revents & POLLIN)) {
                    char buf[256];
                    ssize_t n = ::read(fds[i].get(), buf, sizeof buf);  // a reply, or the end
                    gone = n <= 0;
                }
                if (gone)
                    stats->dropped++;
                else
                    kept.push_back(std::move(fds[i]));
            }
            fds = std::move(kept);
            stats->holding = fds.size();
        }
    }

    // Complete TLS handshakes with the wrong key, as fast as they are refused.
    void wrong_key(std::shared_ptr<const security::Context> ctx) {
        transport::Options o;
        o.connect_timeout = o.handshake_timeout = Millis(5000);
        while (!stop) {
            try {
                auto ch = security::connect(spec.uri, stranger_hello(false, false), o, ctx);
                stats->opened++;  // accepted with a wrong key: must never happen
            } catch (const security::AuthError&) {
                stats->opened++;
                stats->refused_auth++;
            } catch (const Error&) {
                stats->failed_connect++;
                std::this_thread::sleep_for(Millis(5));
            }
        }
    }

#ifdef RMIG_HAVE_RDMA
    // rdma: connect requests carrying a whole hello that asks for
    // authentication, from ids without a queue pair: librdmacm then leaves
    // the answer (REP) for us to establish, and we never do.
    void rdma_holder(const std::string& host_port) {
        auto hp = net::parse_host_port(host_port);
        sockaddr_in dst{};
        dst.sin_family = AF_INET;
        dst.sin_port = htons(hp.port);
        if (::inet_pton(AF_INET, hp.host.c_str(), &dst.sin_addr) != 1)
            throw UsageError(cat("--to rdma:", host_port, ": an IPv4 address of an RDMA device"));
        std::unique_ptr<rdma_event_channel, void (*)(rdma_event_channel*)> ec(rdma_create_event_channel(),
                                                                             rdma_destroy_event_channel);
        if (!ec) throw_errno("rdma_create_event_channel");
        std::set<rdma_cm_id*> held;
        auto gone = [&](rdma_cm_id* id) {
            if (held.erase(id)) {
                stats->dropped++;
                rdma_destroy_id(id);
            }
        };
        // Takes the next event: true if it is `want` for `id`; others are handled.
        auto take = [&](rdma_cm_id* id, rdma_cm_event_type want, int ms) {
            pollfd p{ec->fd, POLLIN, 0};
            if (::poll(&p, 1, ms) != 1) return false;
            rdma_cm_event* ev = nullptr;
            if (rdma_get_cm_event(ec.get(), &ev) != 0) return false;
            rdma_cm_id* of = ev->id;
            auto type = ev->event;
            rdma_ack_cm_event(ev);
            if (of == id && type == want) return true;
            if (type != RDMA_CM_EVENT_CONNECT_RESPONSE && type != RDMA_CM_EVENT_ADDR_RESOLVED &&
                type != RDMA_CM_EVENT_ROUTE_RESOLVED)
                gone(of);  // rejected, unreachable, disconnected: the listener dropped it
            return false;
        };
        auto open_one = [&] {
            rdma_cm_id* id = nullptr;
            if (rdma_create_id(ec.get(), &id, nullptr, RDMA_PS_TCP) != 0) throw_errno("rdma_create_id");
            bool ok = rdma_resolve_addr(id, nullptr, reinterpret_cast<sockaddr*>(&dst), 2000) == 0;
            auto until = Clock::now() + Millis(3000);
            bool step = false;
            while (ok && !step && Clock::now() < until) step = take(id, RDMA_CM_EVENT_ADDR_RESOLVED, 100);
            ok = ok && step && rdma_resolve_route(id, 2000) == 0;
            step = false;
            while (ok && !step && Clock::now() < until) step = take(id, RDMA_CM_EVENT_ROUTE_RESOLVED, 100);
            auto h = wire::encode_hello_compact(stranger_hello(true, spec.encrypt), false);
            rdma_conn_param param{};
            param.private_data = h.data();
            param.private_data_len = static_cast<uint8_t>(h.size());
            param.responder_resources = param.initiator_depth = 1;
            param.retry_count = param.rnr_retry_count = 7;
            if (!ok || !step || rdma_connect(id, &param) != 0) {
                stats->failed_connect++;
                rdma_destroy_id(id);
                std::this_thread::sleep_for(Millis(5));
                return;
            }
            held.insert(id);
            stats->opened++;
        };
        while (!stop) {
            while (held.size() < spec.connections && !stop) {
                open_one();
                stats->holding = held.size();
            }
            take(nullptr, RDMA_CM_EVENT_CONNECT_RESPONSE, 50);
            stats->holding = held.size();
        }
        for (auto* id : held) rdma_destroy_id(id);
    }
#endif

#ifdef RMIG_HAVE_DPDK
    // dpdk: connections opened by SYN and never given a hello.
    void dpdk_holder(const std::string& rest) {
        using namespace transport::dpdk;
        transport::Options o;
        DpdkUri u = parse_uri(rest, o.tuning);
        auto ep = Endpoint::open(u, o);
        ep->require_link(Millis(10000));
        ConnConfig cfg;
        cfg.mss = ep->mss();
        cfg.window = 64;
        rte_ether_addr peer;
        memset(&peer, 0xff, sizeof peer);
        std::mt19937 rng(std::random_device{}());
        std::vector<std::shared_ptr<Connection>> conns;
        while (!stop) {
            while (conns.size() < spec.connections && !stop) {
                auto c = ep->create(static_cast<uint32_t>(rng()), false, peer, cfg, "flood");
                if (!c->wait_open(Millis(2000))) {
                    stats->failed_connect++;
                    c->abort("flood: no answer");
                    ep->remove(*c);
                    continue;
                }
                stats->opened++;
                conns.push_back(std::move(c));
                stats->holding = conns.size();
            }
            std::this_thread::sleep_for(Millis(50));
            std::vector<std::shared_ptr<Connection>> kept;
            for (auto& c : conns) {
                char b[64];
                bool gone = false;
                try {
                    auto n = c->read_now(b, sizeof b);
                    gone = n && *n == 0;
                } catch (const Error&) {
                    gone = true;
                }
                if (gone) {
                    stats->dropped++;
                    ep->remove(*c);
                } else {
                    kept.push_back(std::move(c));
                }
            }
            conns = std::move(kept);
            stats->holding = conns.size();
        }
        for (auto& c : conns) {
            c->abort("flood over");
            ep->remove(*c);
        }
    }
#endif
};

Flood::Flood(FloodSpec spec, std::shared_ptr<FloodStats> stats) : impl_(std::make_unique<Impl>()) {
    impl_->spec = std::move(spec);
    impl_->stats = std::move(stats);
    raise_fd_limit();
    std::string scheme;
    std::string rest = scheme_rest(impl_->spec.uri, &scheme);
    if (impl_->spec.kind == FloodKind::wrong_key) {
        security::Config wrong;
        wrong.psk.resize(32);
        std::random_device rd;
        for (auto& b : wrong.psk) b = static_cast<unsigned char>(rd());
        auto ctx = security::Context::create(wrong);
        for (size_t i = 0; i < impl_->spec.wrong_key_threads; ++i)
            impl_->threads.emplace_back([this, ctx] { impl_->wrong_key(ctx); });
    } else if (scheme == "tcp") {
        impl_->threads.emplace_back([this, rest] { impl_->tcp_holder(rest); });
    } else if (scheme == "rdma") {
#ifdef RMIG_HAVE_RDMA
        if (impl_->spec.kind != FloodKind::stalled_auth)
            throw UsageError("rdma: only --kind stalled-auth (connect requests never established) or wrong-key");
        impl_->threads.emplace_back([this, rest] { impl_->rdma_holder(rest); });
#else
        throw UsageError("this build has no rdma");
#endif
    } else if (scheme == "dpdk") {
#ifdef RMIG_HAVE_DPDK
        if (impl_->spec.kind != FloodKind::silent)
            throw UsageError("dpdk: only --kind silent (SYNs without a hello) or wrong-key");
        impl_->threads.emplace_back([this, rest] { impl_->dpdk_holder(rest); });
#else
        throw UsageError("this build has no dpdk");
#endif
    } else {
        throw UsageError(cat("--to ", impl_->spec.uri, ": tcp, rdma or dpdk only"));
    }
}

Flood::~Flood() {
    impl_->stop = true;
    for (auto& t : impl_->threads) t.join();
}

bool Flood::wait_up(int timeout_ms) const {
    auto until = Clock::now() + Millis(timeout_ms);
    while (Clock::now() < until) {
        if (impl_->spec.kind == FloodKind::wrong_key ? impl_->stats->refused_auth >= impl_->spec.wrong_key_threads
                                                     : impl_->stats->opened >= impl_->spec.connections)
            return true;
        std::this_thread::sleep_for(Millis(10));
    }
    return false;
}

}  // namespace rmig::lab
