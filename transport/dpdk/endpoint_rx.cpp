// Endpoint: what a poller does with each frame it received (docs/dpdk-protocol.md,
// "Connection" and "Port shutdown"). A frame is an owned Mbuf throughout: the
// data path moves it to its connection, every other path lets it go.
#include <rte_ethdev.h>

#include "common/error.hpp"
#include "transport/dpdk/endpoint.hpp"

namespace rmig::transport::dpdk {

namespace {

// A DATA frame's payload goes to its connection without its headers.
void deliver_data(Connection& c, Mbuf m, const proto::SegmentHeader& h, uint64_t now) {
    rte_pktmbuf_adj(m.get(), kFrameOverhead);
    rte_pktmbuf_trim(m.get(), static_cast<uint16_t>(m->data_len - h.length));
    c.on_data(std::move(m), h.seq, h.timestamp, now);
}

}  // namespace

std::optional<Endpoint::Frame> Endpoint::decode_frame(Mbuf m) {
    if (m->nb_segs > 1 && rte_pktmbuf_linearize(m.get()) != 0) return std::nullopt;
    if (m->data_len < kFrameOverhead) return std::nullopt;
    auto* eth = rte_pktmbuf_mtod(m.get(), const rte_ether_hdr*);
    if (eth->ether_type != rte_cpu_to_be_16(proto::kEtherType)) return std::nullopt;
    auto* body = reinterpret_cast<const std::byte*>(eth + 1);
    auto h = proto::decode(std::span(body, m->data_len - RTE_ETHER_HDR_LEN));
    if (!h) return std::nullopt;
    rte_ether_addr from = eth->src_addr;
    return Frame{std::move(m), *h, from};
}

void Endpoint::handle(uint16_t q, const PollerView& view, Mbuf m, uint64_t now) {
    auto f = decode_frame(std::move(m));
    if (!f) return;
    std::shared_ptr<Connection> c = connection_for(view, *f);
    if (c && c->queue() != q) queues_[q]->foreign_rx.fetch_add(1, std::memory_order_relaxed);
    switch (f->h.type) {
    case proto::SegmentType::syn:
        answer_syn(q, *f, c.get(), now);
        break;
    case proto::SegmentType::syn_ack:
        if (c) c->on_syn_ack(f->from, now);
        break;
    case proto::SegmentType::data:
        if (c)
            deliver_data(*c, std::move(f->mbuf), f->h, now);
        else
            answer_unknown_data(q, *f, now);
        break;
    case proto::SegmentType::ack:
        if (c) c->on_ack(f->h.seq, f->h.window_limit, f->h.timestamp, f->payload(), now);
        break;
    case proto::SegmentType::rst:
        if (c) c->on_rst("peer reset the connection (it has no such connection or aborted it)");
        break;
    case proto::SegmentType::bye:
        on_peer_bye(q, *f, c.get(), now);
        break;
    case proto::SegmentType::bye_ack:
        got_bye_ack_ = true;
        break;
    }
}

// Fast path: the poller's own view, no endpoint lock. A connection it does
// not know yet (a new SYN, or one created since the last refresh) is looked
// up under the lock; BYE and BYE_ACK concern the port, not a connection.
std::shared_ptr<Connection> Endpoint::connection_for(const PollerView& view, const Frame& f) {
    bool from_acceptor = f.h.flags & proto::kFromAcceptor;
    uint64_t k = connection_key(f.h.conn_id, !from_acceptor);
    if (auto it = view.all.find(k); it != view.all.end()) return it->second;
    if (f.h.type == proto::SegmentType::bye || f.h.type == proto::SegmentType::bye_ack)
        return nullptr;
    std::lock_guard lock(m_);
    if (auto it = conns_.find(k); it != conns_.end()) return it->second;
    if (f.h.type == proto::SegmentType::syn && listening_) return accept_syn_locked(f);
    return nullptr;
}

std::shared_ptr<Connection> Endpoint::accept_syn_locked(const Frame& f) {
    // The listener takes new connections at once; should it not, a SYN
    // flood stops here (answered with RST) rather than growing the queue.
    if (incoming_.size() >= kMaxIncoming) return nullptr;
    // The SYN names the connector's queue: use the same index, so on memif
    // both directions of the connection use one ring pair.
    uint16_t cq = f.h.queue < queues_.size() ? f.h.queue : least_used_queue_locked();
    auto c = std::make_shared<Connection>(*this, f.h.conn_id, true, f.from, listen_cfg_,
                                          cat("dpdk connection ", f.h.conn_id, " from ",
                                              port_name()),
                                          cq);
    conns_.emplace(connection_key(f.h.conn_id, true), c);
    ++conns_generation_;
    incoming_.push_back(c);
    incoming_cv_.notify_all();
    return c;
}

proto::SegmentHeader Endpoint::reply_header(const Frame& f, const Connection* c, uint16_t q) {
    proto::SegmentHeader reply;
    reply.conn_id = f.h.conn_id;
    reply.flags = (f.h.flags & proto::kFromAcceptor) ? 0 : proto::kFromAcceptor;
    reply.queue = static_cast<uint8_t>(c ? c->queue() : q);
    return reply;
}

// Every SYN of a known connection gets a SYN_ACK (ours may have been lost);
// a SYN nobody listens for gets RST.
void Endpoint::answer_syn(uint16_t q, const Frame& f, Connection* c, uint64_t now) {
    auto reply = reply_header(f, c, q);
    if (c) {
        reply.type = proto::SegmentType::syn_ack;
        c->note_rx(now);
    } else {
        reply.type = proto::SegmentType::rst;
    }
    send_control(q, f.from, reply);
}

void Endpoint::answer_unknown_data(uint16_t q, const Frame& f, uint64_t now) {
    auto reply = reply_header(f, nullptr, q);
    if (f.h.flags & proto::kFin) {
        // The FIN of a connection we already closed: its ack was lost.
        reply.type = proto::SegmentType::ack;
        reply.seq = f.h.seq + 1;
        reply.window_limit = f.h.seq + 1;
        send_control(q, f.from, reply);
    } else if (now - queues_[q]->unknown_rst_ns > 1'000'000) {
        reply.type = proto::SegmentType::rst;
        send_control(q, f.from, reply);
        queues_[q]->unknown_rst_ns = now;
    }
}

void Endpoint::on_peer_bye(uint16_t q, const Frame& f, const Connection* c, uint64_t now) {
    auto reply = reply_header(f, c, q);
    reply.type = proto::SegmentType::bye_ack;
    send_control(q, f.from, reply);
    flush_tx(q);
    // memif (DPDK 22.11) can crash a receiver polling while its peer
    // disconnects: stop polling (every queue) until the link drops or a
    // second passes.
    peer_said_bye_ = true;
    rx_paused_until_ = now + 1'000'000'000;
    std::lock_guard lock(m_);
    for (auto& [k, conn] : conns_) conn->on_rst("peer port closed");
}

}  // namespace rmig::transport::dpdk
