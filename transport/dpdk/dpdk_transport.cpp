#include "transport/dpdk/dpdk_transport.hpp"

#include <rte_ether.h>

#include <random>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/log_limiter.hpp"
#include "transport/dpdk/dpdk_uri.hpp"
#include "transport/dpdk/endpoint.hpp"
#include "transport/dpdk/hello_gate.hpp"
#include "transport/dpdk/protocol/write_record.hpp"

namespace rmig::transport::dpdk {

namespace {

ConnConfig conn_config(const DpdkUri& u, const Endpoint& ep, const Options& o) {
    ConnConfig c;
    c.mss = ep.mss();
    c.window = u.opts.window_segments
                   ? u.opts.window_segments
                   : proto::window_from_bdp(u.opts.link_gbps, u.opts.rtt_us, c.mss, 64, 4096);
    c.pace_bytes_per_sec = static_cast<uint64_t>(u.opts.pace_gbps * 1e9 / 8);
    c.tx_loss = u.opts.tx_loss;
    c.dead_peer_timeout = o.dead_peer_timeout;
    return c;
}

std::string channel_name(const wire::Hello& h, const std::string& port, bool outgoing) {
    std::string what = h.kind == wire::ChannelKind::control ? "control channel"
                                                            : cat("channel ", h.channel_id);
    return cat("dpdk ", what, outgoing ? " to peer via " : " from peer via ", port);
}

Millis close_timeout(const Options& o) { return std::min(o.dead_peer_timeout, Millis(5000)); }

// Closes and unregisters a connection that never became a channel.
void discard(Endpoint& ep, const std::shared_ptr<Connection>& c, bool graceful) {
    if (graceful)
        c->close(Millis(500));
    else
        c->abort("discarded");
    ep.remove(*c);
}

class DpdkIncoming final : public Incoming {
public:
    DpdkIncoming(std::shared_ptr<Endpoint> ep, std::shared_ptr<Connection> c, const wire::Hello& h,
                 const Options& o)
        : ep_(std::move(ep)), c_(std::move(c)), hello_(h), peer_(c_->name()), opts_(o) {}
    ~DpdkIncoming() override {
        if (c_) discard(*ep_, c_, false);
    }

    const wire::Hello& hello() const override { return hello_; }
    const std::string& peer() const override { return peer_; }

    std::unique_ptr<Channel> accept(const wire::Hello& reply) override {
        auto b = wire::encode_hello(wire::accepting_reply(hello_, reply), true);
        c_->write(std::span<const std::byte>(b));
        auto conn = std::move(c_);
        return std::make_unique<DpdkChannel>(ep_, std::move(conn), hello_,
                                             channel_name(hello_, ep_->port_name(), false), opts_);
    }

    void refuse(wire::HelloStatus status) override {
        auto b = wire::encode_hello(wire::refusing_reply(hello_, status), true);
        try {
            c_->write(std::span<const std::byte>(b));
            discard(*ep_, c_, true);
        } catch (const Error&) {
            discard(*ep_, c_, false);  // the peer is gone already
        }
        c_.reset();
    }

private:
    std::shared_ptr<Endpoint> ep_;
    std::shared_ptr<Connection> c_;
    wire::Hello hello_;
    std::string peer_;
    Options opts_;
};

class DpdkListener final : public Listener {
public:
    DpdkListener(const DpdkUri& u, const Options& o) : opts_(o) {
        ep_ = Endpoint::open(u, o);
        ep_->start_listening(conn_config(u, *ep_, o));
        address_ = "dpdk:" + u.devargs;
        gate_ = std::make_unique<HelloGate>(ep_, o);
    }
    ~DpdkListener() override {
        gate_.reset();
        ep_->stop_listening();
    }

    std::unique_ptr<Incoming> next(Millis timeout) override {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
            if (left.count() < 0) return nullptr;
            auto g = gate_->next(left);
            if (!g) return nullptr;
            try {
                wire::Hello h = wire::decode_hello(g->hello, false, g->conn->name());
                auto in = std::make_unique<DpdkIncoming>(ep_, g->conn, h, opts_);
                if (h.version != wire::kProtocolVersion) {
                    dropped_.warn("refusing ", g->conn->name(), ": it speaks wire version ", h.version);
                    in->refuse(wire::HelloStatus::bad_version);
                    continue;
                }
                return in;
            } catch (const Error& e) {
                dropped_.warn("dropped dpdk connection: ", e.what());
                discard(*ep_, g->conn, false);
            }
        }
    }

    std::string address() const override { return address_; }

private:
    Options opts_;
    std::shared_ptr<Endpoint> ep_;
    std::string address_;
    log::Limiter dropped_{"malformed dpdk hellos"};
    std::unique_ptr<HelloGate> gate_;
};

rte_ether_addr parse_mac(const std::string& s) {
    rte_ether_addr a;
    if (s.empty()) {
        memset(&a, 0xff, sizeof a);  // broadcast until the SYN_ACK names the peer
        return a;
    }
    if (rte_ether_unformat_addr(s.c_str(), &a) != 0)
        throw Error(cat("dpdk URI option rmig.peer=", s, ": not a MAC address"));
    return a;
}

}  // namespace

DpdkChannel::DpdkChannel(std::shared_ptr<Endpoint> ep, std::shared_ptr<Connection> conn,
                         const wire::Hello& peer, std::string name, const Options& opts)
    : ep_(std::move(ep)),
      conn_(std::move(conn)),
      peer_(peer),
      name_(std::move(name)),
      opts_(opts),
      enc_(peer.channel_id),
      dec_(peer.channel_id, name_) {}

DpdkChannel::~DpdkChannel() {
    if (!conn_->close(close_timeout(opts_)))
        log::debug(name_, ": closed before the peer acknowledged everything");
    if (zero_copy_bytes_)
        log::info(name_, ": ", zero_copy_bytes_, " bytes of remote writes sent zero-copy from registered memory");
    ep_->remove(*conn_);
    release_remote_writes();
}

void DpdkChannel::send(wire::FrameType type, std::span<const std::byte> payload) {
    std::lock_guard lock(send_mutex_);
    auto header = enc_.encode(type, payload);
    std::span<const std::byte> parts[2] = {header, payload};
    try {
        conn_->write(std::span(parts, payload.empty() ? 1 : 2));
    } catch (const Error& e) {
        throw LinkError(cat(name_, ": sending ", wire::to_string(type), " frame: ", e.what()));
    }
}

wire::FrameType DpdkChannel::recv(std::vector<std::byte>& payload) {
    std::lock_guard lock(recv_mutex_);
    wire::HeaderBytes hb;
    // Waiting is bounded by the connection's dead-peer detection; the read
    // timeout only guards against a bug there.
    Millis forever = opts_.dead_peer_timeout * 1000;
    // The connection's errors name the connection; the channel's name says
    // which channel it was (as send() does, and channel.hpp asks).
    auto read = [&](void* dst, size_t n, const char* what) {
        try {
            conn_->read_exact(dst, n, forever, what);
        } catch (const LinkError& e) {
            throw LinkError(cat(name_, ": ", e.what()));
        }
    };
    read(hb.data(), hb.size(), "a frame header");
    // Remote writes (OneSided) go into place as they come, before any later frame.
    while (proto::is_write_record(hb)) {
        apply_write_record(hb);
        read(hb.data(), hb.size(), "a frame header");
    }
    wire::FrameHeader h = dec_.decode_header(hb);
    payload.resize(h.length);
    read(payload.data(), h.length, "a frame payload");
    dec_.verify_payload(h, payload);
    return h.type;
}

std::vector<QueueStats> DpdkChannel::port_queue_stats() const { return ep_->queue_stats(); }

void DpdkChannel::shutdown() { conn_->abort("channel shut down locally"); }

std::unique_ptr<Listener> listen(const std::string& rest, const Options& opts) {
    return std::make_unique<DpdkListener>(parse_uri(rest, opts.tuning), opts);
}

std::unique_ptr<Channel> connect(const std::string& rest, const wire::Hello& hello,
                                 const Options& opts) {
    DpdkUri u = parse_uri(rest, opts.tuning);
    auto ep = Endpoint::open(u, opts);
    ep->require_link(opts.connect_timeout);
    std::random_device rd;
    uint32_t id = rd();
    std::string what = hello.kind == wire::ChannelKind::control ? std::string("control channel")
                                                                 : cat("channel ", hello.channel_id);
    auto c = ep->create(id, false, parse_mac(u.peer_mac), conn_config(u, *ep, opts),
                        cat("dpdk ", what, " to peer via ", u.port_name));
    try {
        if (!c->wait_open(opts.connect_timeout)) {
            c->abort("connect timed out");
            throw LinkError(cat("dpdk: no rmig listener answered on port ", u.port_name, " within ",
                                opts.connect_timeout.count(), " ms (is the peer listening?)"));
        }
        auto out = wire::encode_hello(hello, false);
        c->write(std::span<const std::byte>(out));
        wire::HelloBytes in;
        c->read_exact(in.data(), in.size(), opts.handshake_timeout, "the handshake reply");
        std::string peer = cat("dpdk peer via ", u.port_name);
        wire::Hello reply = wire::decode_hello(in, true, peer);
        if (reply.status != wire::HelloStatus::ok)
            throw Error(cat(peer, " refused ", what, ": ", wire::to_string(reply.status),
                            reply.status == wire::HelloStatus::bad_version
                                ? cat(" (it speaks version ", reply.version, ")")
                                : std::string()));
        wire::check_version(reply, peer);
        return std::make_unique<DpdkChannel>(ep, c, reply, channel_name(hello, u.port_name, true),
                                             opts);
    } catch (...) {
        discard(*ep, c, false);
        throw;
    }
}

}  // namespace rmig::transport::dpdk
