#include "transport/rdma/rdma_backend.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <optional>
#include <span>
#include <chrono>
#include <cstring>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"
#include "transport/rdma/rdma_channel.hpp"
#include "transport/rdma/rdma_errors.hpp"

namespace rmig::transport::rdma {

namespace {

using Clock = std::chrono::steady_clock;

struct Addr {
    sockaddr_storage ss{};
};

Addr resolve(const net::HostPort& hp, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    addrinfo* res = nullptr;
    std::string port = std::to_string(hp.port);
    int rc = getaddrinfo(hp.host.empty() ? nullptr : hp.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) throw Error(cat("cannot resolve '", hp.str(), "': ", gai_strerror(rc)));
    Addr a;
    std::memcpy(&a.ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return a;
}

std::string addr_str(sockaddr* sa) {
    if (!sa) return "?";
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    socklen_t len = sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "?";
    return sa->sa_family == AF_INET6 ? cat('[', host, "]:", serv) : cat(host, ':', serv);
}

// RDMA READ depth of a connection: initiator_depth, the READs this side may
// have outstanding towards the peer; responder_resources, those it serves for
// the peer at once. Memory mode's post-copy destination fetches faulted pages
// with one READ each (RdmaChannel::read), several in a row and from several
// threads, each a full round trip: kReadDepth (16) keeps them from queueing
// behind one another in the NIC without holding much per-QP responder state.
// The device caps both (max_qp_init_rd_atom, max_qp_rd_atom: rdma_connect and
// rdma_accept refuse more), and an acceptor takes no more than the connector
// offered (a READ beyond the peer's responder resources would be an error).
struct ReadDepth {
    uint8_t responder_resources = 1;
    uint8_t initiator_depth = 1;
};

ReadDepth read_depth(rdma_cm_id* id) {
    ReadDepth d;
    ibv_device_attr attr{};
    if (!id->verbs || ibv_query_device(id->verbs, &attr) != 0) return d;  // 1 each: what always works
    d.responder_resources = static_cast<uint8_t>(std::clamp<int>(attr.max_qp_rd_atom, 0, int(kReadDepth)));
    d.initiator_depth = static_cast<uint8_t>(std::clamp<int>(attr.max_qp_init_rd_atom, 0, int(kReadDepth)));
    return d;
}

// Retry forever on RNR (cannot happen with credits), 7 times on loss.
rdma_conn_param conn_param(std::span<const std::byte> private_data, ReadDepth depth) {
    rdma_conn_param p{};
    p.private_data = private_data.data();
    p.private_data_len = static_cast<uint8_t>(private_data.size());
    p.responder_resources = depth.responder_resources;
    p.initiator_depth = depth.initiator_depth;
    p.retry_count = 7;  // ignored when accepting
    p.rnr_retry_count = 7;
    return p;
}

std::string what_channel(const wire::Hello& h) {
    return h.kind == wire::ChannelKind::control ? std::string("control channel")
                                                : cat("channel ", h.channel_id);
}

// Waits for `want` on `ch`; anything else is an error naming the peer.
CmEvent expect_event(rdma_event_channel* ch, rdma_cm_event_type want, int timeout_ms,
                     const std::string& peer, const char* step) {
    CmEvent ev = next_cm_event(ch, timeout_ms);
    if (!ev) throw LinkError(cat(step, " with ", peer, ": no answer within ", timeout_ms, " ms"));
    if (ev->event == want) return ev;
    if (ev->event == RDMA_CM_EVENT_ADDR_ERROR)
        throw Error(cat("cannot reach ", peer, " over RDMA: the address is not reachable from any "
                        "local RDMA device (is it the IP of the peer's RoCE or IPoIB interface, "
                        "and is a local RDMA device on that network? see `rdma link` and `ip route`)"));
    if (ev->event == RDMA_CM_EVENT_ROUTE_ERROR)
        throw Error(cat("no RDMA route to ", peer, " (", rdma_event_str(ev->event), ", status ",
                        ev->status, "): check the GID table (`ibv_devinfo -v`) and the subnet"));
    throw LinkError(cat(step, " with ", peer, " failed: ", rdma_event_str(ev->event), " (status ",
                        ev->status, ")"));
}

class RdmaIncoming final : public Incoming {
public:
    // `offered`: the connect request's read depth, from this side's view
    // (initiator_depth = the connector's responder resources, and vice versa).
    RdmaIncoming(CmId id, const wire::Hello& hello, std::string peer, const Options& opts, ReadDepth offered)
        : id_(std::move(id)), hello_(hello), peer_(std::move(peer)), opts_(opts), offered_(offered) {}

    const wire::Hello& hello() const override { return hello_; }
    const std::string& peer() const override { return peer_; }

    std::unique_ptr<Channel> accept(const wire::Hello& reply) override {
        EventChannel events = make_event_channel();
        if (rdma_migrate_id(id_.get(), events.get()) != 0) throw_errno("rdma_migrate_id");
        auto ch = std::make_unique<RdmaChannel>(std::move(events), std::move(id_), rdma_options(opts_.tuning),
                                                peer_);
        wire::Hello r = wire::accepting_reply(hello_, reply);
        std::array<std::byte, wire::kCompactHelloSize + RingDesc::kSize> pd{};
        auto h = wire::encode_hello_compact(r, true);
        std::memcpy(pd.data(), h.data(), h.size());
        ch->local_ring().encode(pd.data() + h.size());
        ReadDepth depth = read_depth(ch->id());
        depth.responder_resources = std::min(depth.responder_resources, offered_.responder_resources);
        depth.initiator_depth = std::min(depth.initiator_depth, offered_.initiator_depth);
        rdma_conn_param param = conn_param(pd, depth);
        if (rdma_accept(ch->id(), &param) != 0) throw_errno(cat("rdma_accept from ", peer_));
        // In slices, so that a listener can drop a connection request that
        // never completes (cancel()) without waiting out the whole timeout.
        auto until = Clock::now() + opts_.handshake_timeout;
        for (;;) {
            int slice = static_cast<int>(std::clamp<int64_t>(
                std::chrono::duration_cast<Millis>(until - Clock::now()).count(), 0, 100));
            if (cancelled_) throw LinkError(cat("accepting ", peer_, ": dropped before it was established"));
            if (slice == 0) {
                expect_event(ch->events(), RDMA_CM_EVENT_ESTABLISHED, 0, peer_, "accepting");
                break;
            }
            if (net::wait_readable(ch->events()->fd, Millis(slice))) {
                expect_event(ch->events(), RDMA_CM_EVENT_ESTABLISHED, slice, peer_, "accepting");
                break;
            }
        }
        ch->established(hello_, cat("rdma ", what_channel(hello_), " from ", peer_), std::nullopt);
        return ch;
    }

    void cancel() override { cancelled_ = true; }

    void refuse(wire::HelloStatus status) override {
        auto b = wire::encode_hello_compact(wire::refusing_reply(hello_, status), true);
        rdma_reject(id_.get(), b.data(), static_cast<uint8_t>(b.size()));
        id_.reset();
    }

private:
    CmId id_;
    wire::Hello hello_;
    std::string peer_;
    Options opts_;
    ReadDepth offered_;
    std::atomic<bool> cancelled_{false};
};

class RdmaListener final : public Listener {
public:
    RdmaListener(const std::string& host_port, const Options& opts) : opts_(opts) {
        auto hp = net::parse_host_port(host_port);
        events_ = make_event_channel();
        rdma_cm_id* raw = nullptr;
        if (rdma_create_id(events_.get(), &raw, nullptr, RDMA_PS_TCP) != 0) throw_errno("rdma_create_id");
        id_.reset(raw);
        Addr a = resolve(hp, true);
        if (rdma_bind_addr(id_.get(), reinterpret_cast<sockaddr*>(&a.ss)) != 0)
            throw_errno(cat("cannot listen for RDMA on ", hp.str(),
                            " (the address must belong to an RDMA device's interface; see `rdma link`)"));
        // Bound to one device's address: refuse to wait on a port that is down.
        if (id_->verbs) require_port_active(id_.get());
        if (rdma_listen(id_.get(), 64) != 0) throw_errno(cat("rdma_listen on ", hp.str()));
        hp.port = ntohs(rdma_get_src_port(id_.get()));
        address_ = "rdma:" + hp.str();
    }

    std::unique_ptr<Incoming> next(Millis timeout) override {
        auto deadline = Clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
            if (left < 0) return nullptr;
            CmEvent ev = next_cm_event(events_.get(), static_cast<int>(left));
            if (!ev) return nullptr;
            if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) continue;
            CmId id(ev->id);
            std::string peer = addr_str(rdma_get_peer_addr(ev->id));
            std::vector<std::byte> pd(static_cast<const std::byte*>(ev->param.conn.private_data),
                                      static_cast<const std::byte*>(ev->param.conn.private_data) +
                                          ev->param.conn.private_data_len);
            ReadDepth offered{ev->param.conn.responder_resources, ev->param.conn.initiator_depth};
            ev.reset();
            try {
                wire::Hello h = wire::decode_hello_compact(pd, false, peer);
                auto incoming = std::make_unique<RdmaIncoming>(std::move(id), h, peer, opts_, offered);
                if (h.version != wire::kProtocolVersion) {
                    log::warn("refusing ", peer, ": it speaks wire version ", h.version);
                    incoming->refuse(wire::HelloStatus::bad_version);
                    continue;
                }
                return incoming;
            } catch (const ProtocolError& e) {
                // Not an rmig peer: refuse without an rmig reply (we cannot trust its framing).
                log::warn("refused RDMA connection: ", e.what());
                rdma_reject(id.get(), nullptr, 0);
            }
        }
    }

    std::string address() const override { return address_; }

private:
    Options opts_;
    EventChannel events_;
    CmId id_;
    std::string address_;
};

}  // namespace

std::unique_ptr<Listener> listen(const std::string& host_port, const Options& opts) {
    return std::make_unique<RdmaListener>(host_port, opts);
}

std::unique_ptr<Channel> connect(const std::string& host_port, const wire::Hello& hello,
                                 const Options& opts) {
    auto hp = net::parse_host_port(host_port);
    std::string peer = hp.str();
    EventChannel events = make_event_channel();
    rdma_cm_id* raw = nullptr;
    if (rdma_create_id(events.get(), &raw, nullptr, RDMA_PS_TCP) != 0) throw_errno("rdma_create_id");
    CmId id(raw);
    Addr a = resolve(hp, false);
    int step_ms = static_cast<int>(std::min<int64_t>(opts.connect_timeout.count(), 5000));
    if (rdma_resolve_addr(id.get(), nullptr, reinterpret_cast<sockaddr*>(&a.ss), step_ms) != 0) {
        int err = errno;
        if (err == ENETUNREACH || err == EADDRNOTAVAIL || err == ENODEV || err == EHOSTUNREACH)
            throw Error(cat("cannot reach ", peer, " over RDMA: ", std::strerror(err),
                            "; the address is not reachable from any local RDMA device (is it the IP "
                            "of the peer's RoCE or IPoIB interface? see `rdma link` and `ip route`)"));
        throw_errno(cat("rdma_resolve_addr for ", peer), err);
    }
    expect_event(events.get(), RDMA_CM_EVENT_ADDR_RESOLVED, step_ms + 1000, peer, "resolving the address");
    if (rdma_resolve_route(id.get(), step_ms) != 0) throw_errno(cat("rdma_resolve_route for ", peer));
    expect_event(events.get(), RDMA_CM_EVENT_ROUTE_RESOLVED, step_ms + 1000, peer, "resolving the route");

    auto ch = std::make_unique<RdmaChannel>(std::move(events), std::move(id), rdma_options(opts.tuning), peer);
    auto h = wire::encode_hello_compact(hello, false);
    rdma_conn_param param = conn_param(h, read_depth(ch->id()));
    if (rdma_connect(ch->id(), &param) != 0) throw_errno(cat("rdma_connect to ", peer));
    CmEvent ev = next_cm_event(ch->events(), static_cast<int>(opts.connect_timeout.count()));
    if (!ev) throw LinkError(cat("connecting to ", peer, " over RDMA: no answer within ",
                                 opts.connect_timeout.count(), " ms"));
    std::span<const std::byte> pd(static_cast<const std::byte*>(ev->param.conn.private_data),
                                  ev->param.conn.private_data ? ev->param.conn.private_data_len : 0);
    if (ev->event == RDMA_CM_EVENT_REJECTED) {
        // An rmig receiver explains itself in the reject's private data; the
        // CM's own rejects (nobody listening) carry zeroes there.
        std::optional<wire::Hello> r;
        try {
            r = wire::decode_hello_compact(pd, true, peer);
        } catch (const ProtocolError&) {
        }
        if (r)
            throw Error(cat(peer, " refused ", what_channel(hello), ": ", wire::to_string(r->status),
                            r->status == wire::HelloStatus::bad_version
                                ? cat(" (it speaks version ", r->version, ")")
                                : std::string()));
        throw Error(cat(peer, " rejected the RDMA connection (status ", ev->status,
                        "): is `rmig receive --listen rdma:...` running on that address and port?"));
    }
    if (ev->event != RDMA_CM_EVENT_ESTABLISHED)
        throw LinkError(cat("connecting to ", peer, " over RDMA failed: ", rdma_event_str(ev->event),
                            " (status ", ev->status, ")"));
    if (pd.size() < wire::kCompactHelloSize + RingDesc::kSize)
        throw ProtocolError(cat("handshake from ", peer, ": reply carries ", pd.size(),
                                " bytes of private data, expected ",
                                wire::kCompactHelloSize + RingDesc::kSize));
    wire::Hello reply = wire::decode_hello_compact(pd, true, peer);
    RingDesc ring = RingDesc::decode(pd.data() + wire::kCompactHelloSize);
    ev.reset();
    wire::check_version(reply, peer);
    ch->established(reply, cat("rdma ", what_channel(hello), " to ", peer), ring);
    ch->send_ring_desc();
    return ch;
}

}  // namespace rmig::transport::rdma
