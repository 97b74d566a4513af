// One DPDK port used by rmig in this process: the device (probed from the URI's
// devargs if the EAL did not create it), its mbuf pool, N rx/tx queue pairs
// (rmig.queues; one per channel where the port allows), and one poller thread
// per queue pair that moves that queue's frames and runs the timers of the
// connections placed on it (docs/dpdk-protocol.md, "Queues"). Shared by the
// listener and channels that use the port; the last one to go closes it.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "transport/dpdk/connection.hpp"
#include "transport/dpdk/dpdk_handles.hpp"
#include "transport/dpdk/dpdk_uri.hpp"
#include "transport/dpdk/port.hpp"
#include "transport/dpdk/protocol/segment_header.hpp"

namespace rmig::transport::dpdk {

class Endpoint {
public:
    // The endpoint of the port `uri` names, shared with other users in this process.
    static std::shared_ptr<Endpoint> open(const DpdkUri& uri, const Options& opts);
    ~Endpoint();

    const std::string& port_name() const { return port_.name(); }
    uint16_t port_id() const { return port_.id(); }
    rte_mempool* pool() const { return port_.pool(); }
    uint32_t mss() const { return port_.mss(); }
    uint32_t mtu() const { return port_.mtu(); }
    const rte_ether_addr& mac() const { return port_.mac(); }
    uint16_t queues() const { return static_cast<uint16_t>(queues_.size()); }
    std::vector<QueueStats> queue_stats() const;
    bool link_up() const { return port_.link_up(); }
    // Waits up to `timeout` for link up; throws Error saying what to check.
    void require_link(Millis timeout) const;

    // A connecting-side connection, placed on the queue with fewest connections.
    std::shared_ptr<Connection> create(uint32_t id, bool acceptor, const rte_ether_addr& peer,
                                       const ConnConfig& cfg, const std::string& name);
    void remove(const Connection& c);

    // Listening: SYNs create acceptor-side connections queued here.
    void start_listening(const ConnConfig& cfg);
    void stop_listening();
    std::shared_ptr<Connection> next_incoming(Millis timeout);

    // Helpers for Connection::service, called only by the poller of queue `q`
    // (which owns that queue's tx batch).
    Mbuf alloc() { return Mbuf::alloc(pool()); }  // empty when the pool is exhausted
    void fill_headers(rte_mbuf* m, const rte_ether_addr& dst, const proto::SegmentHeader& h);
    void send_control(uint16_t q, const rte_ether_addr& dst, const proto::SegmentHeader& h,
                      std::span<const std::byte> payload = {});
    // Queues one reference to a frame for the device; it is the device's once sent.
    void queue_tx(uint16_t q, Mbuf m);
    // False while the tx ring is full and frames wait: send no new data then.
    bool tx_room(uint16_t q) const { return queues_[q]->tx_batch.size() < 128; }
    bool queued_for_tx(uint16_t q, const rte_mbuf* m) const {
        return queues_[q]->tx_batch.contains(m);
    }

private:
    static constexpr uint16_t kBurst = 32;         // frames per rx/tx burst
    static constexpr size_t kTxBacklogMax = 4096;  // frames held back per queue, at most

    Endpoint(const DpdkUri& uri, const Options& opts);
    // What a poller knows of the port's connections: all of them by key (for
    // lookups without the endpoint lock) and those placed on its queue.
    struct PollerView {
        uint64_t generation = UINT64_MAX;
        std::map<uint64_t, std::shared_ptr<Connection>> all;
        std::vector<std::shared_ptr<Connection>> mine;
    };
    // A received frame of ours, its headers decoded.
    struct Frame {
        Mbuf mbuf;
        proto::SegmentHeader h;
        rte_ether_addr from;
        std::span<const std::byte> payload() const {
            return {rte_pktmbuf_mtod_offset(mbuf.get(), const std::byte*, kFrameOverhead),
                    h.length};
        }
    };

    // Poller threads (endpoint_poller.cpp).
    void start_pollers();
    void stop_pollers();
    void poll_loop(uint16_t q);
    size_t poll_once(uint16_t q, PollerView& view, uint64_t now);
    void refresh(uint16_t q, PollerView& view);
    void flush_tx(uint16_t q);

    // Received frames (endpoint_rx.cpp).
    static std::optional<Frame> decode_frame(Mbuf m);  // nullopt (m freed): not one of ours
    void handle(uint16_t q, const PollerView& view, Mbuf m, uint64_t now);
    std::shared_ptr<Connection> connection_for(const PollerView& view, const Frame& f);
    std::shared_ptr<Connection> accept_syn_locked(const Frame& f);
    static proto::SegmentHeader reply_header(const Frame& f, const Connection* c, uint16_t q);
    void answer_syn(uint16_t q, const Frame& f, Connection* c, uint64_t now);
    void answer_unknown_data(uint16_t q, const Frame& f, uint64_t now);
    void on_peer_bye(uint16_t q, const Frame& f, const Connection* c, uint64_t now);

    // Port shutdown handshake (endpoint_poller.cpp).
    void goodbye();
    void say_bye();
    void on_frame_while_leaving(const Frame& f);

    uint16_t least_used_queue_locked() const;

    // Declared before everything that holds its mbufs (connections, tx
    // batches), so it is released after them.
    Port port_;
    const bool memif_, memif_client_;

    std::mutex m_;  // guards conns_, listening state, incoming_ (not taken on the fast path)
    std::condition_variable incoming_cv_;
    std::map<uint64_t, std::shared_ptr<Connection>> conns_;  // key: id * 2 + (we accept ? 1 : 0)
    std::atomic<uint64_t> conns_generation_{0};  // bumped on every change of conns_
    bool listening_ = false;
    ConnConfig listen_cfg_;
    std::deque<std::shared_ptr<Connection>> incoming_;
    static constexpr size_t kMaxIncoming = 1024;

    struct Queue {
        // Held across every rx/tx burst on the queue, so that memif's
        // teardown of a connection can wait until no burst is in its rings.
        std::mutex burst;
        TxBatch tx_batch;  // owned by this queue's poller
        uint64_t unknown_rst_ns = 0;
        std::atomic<uint64_t> rx_frames{0}, tx_frames{0}, foreign_rx{0};
        std::thread poller;
    };
    std::vector<std::unique_ptr<Queue>> queues_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> peer_said_bye_{false}, got_bye_ack_{false};
    std::atomic<uint64_t> rx_paused_until_{0};
};

// Registry key of a connection: both ends number their own, so the id alone
// is not unique on a port.
inline uint64_t connection_key(uint32_t id, bool we_accept) {
    return uint64_t(id) * 2 + (we_accept ? 1 : 0);
}

}  // namespace rmig::transport::dpdk
