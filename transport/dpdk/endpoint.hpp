// One DPDK port used by rmig in this process: the device (probed from the URI's
// devargs if the EAL did not create it), its mbuf pool, N rx/tx queue pairs
// (rmig.queues; one per channel where the port allows), and one poller thread
// per queue pair that moves that queue's frames and runs the timers of the
// connections placed on it (docs/dpdk-protocol.md, "Queues"). Shared by the
// listener and channels that use the port; the last one to go closes it.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "transport/dpdk/connection.hpp"
#include "transport/dpdk/dpdk_uri.hpp"
#include "transport/dpdk/protocol/segment_header.hpp"

namespace rmig::transport::dpdk {

class Endpoint {
public:
    // The endpoint of the port `uri` names, shared with other users in this process.
    static std::shared_ptr<Endpoint> open(const DpdkUri& uri, const Options& opts);
    ~Endpoint();

    const std::string& port_name() const { return name_; }
    uint16_t port_id() const { return port_; }
    rte_mempool* pool() const { return pool_; }
    uint32_t mss() const { return mss_; }
    uint32_t mtu() const { return mtu_; }
    const rte_ether_addr& mac() const { return mac_; }
    uint16_t queues() const { return static_cast<uint16_t>(queues_.size()); }
    std::vector<QueueStats> queue_stats() const;
    bool link_up() const;
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
    rte_mbuf* alloc();
    void fill_headers(rte_mbuf* m, const rte_ether_addr& dst, const proto::SegmentHeader& h);
    void send_control(uint16_t q, const rte_ether_addr& dst, const proto::SegmentHeader& h,
                      std::span<const std::byte> payload = {});
    void queue_tx(uint16_t q, rte_mbuf* m);  // takes one reference
    // False while the tx ring is full and frames wait: send no new data then.
    bool tx_room(uint16_t q) const { return queues_[q]->tx_batch.size() < 128; }
    bool queued_for_tx(uint16_t q, const rte_mbuf* m) const {
        auto& b = queues_[q]->tx_batch;
        return std::find(b.begin(), b.end(), m) != b.end();
    }

private:
    Endpoint(const DpdkUri& uri, const Options& opts);
    void setup(const DpdkUri& uri);
    void release_port();
    // What a poller knows of the port's connections: all of them by key (for
    // lookups without the endpoint lock) and those placed on its queue.
    struct PollerView {
        uint64_t generation = UINT64_MAX;
        std::map<uint64_t, std::shared_ptr<Connection>> all;
        std::vector<std::shared_ptr<Connection>> mine;
    };
    void poll_loop(uint16_t q);
    size_t poll_once(uint16_t q, PollerView& view, uint64_t now);
    void refresh(uint16_t q, PollerView& view);
    void handle(uint16_t q, const PollerView& view, rte_mbuf* m, uint64_t now);
    void flush_tx(uint16_t q);
    void goodbye();
    void say_bye();
    uint16_t least_used_queue_locked() const;

    std::string name_;
    bool probed_ = false;
    uint16_t port_ = 0;
    rte_mempool* pool_ = nullptr;
    uint32_t mtu_ = 1500, mss_ = 1460;
    rte_ether_addr mac_{};
    bool started_ = false, configured_ = false;
    bool memif_ = false, memif_client_ = false;

    std::mutex m_;  // guards conns_, listening state, incoming_ (not taken on the fast path)
    std::condition_variable incoming_cv_;
    std::map<uint64_t, std::shared_ptr<Connection>> conns_;  // key: id * 2 + (we accept ? 1 : 0)
    std::atomic<uint64_t> conns_generation_{0};  // bumped on every change of conns_
    bool listening_ = false;
    ConnConfig listen_cfg_;
    std::deque<std::shared_ptr<Connection>> incoming_;

    struct Queue {
        std::vector<rte_mbuf*> tx_batch;  // owned by this queue's poller
        uint64_t unknown_rst_ns = 0;
        std::atomic<uint64_t> rx_frames{0}, tx_frames{0}, foreign_rx{0};
        std::thread poller;
    };
    std::vector<std::unique_ptr<Queue>> queues_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> peer_said_bye_{false}, got_bye_ack_{false};
    std::atomic<uint64_t> rx_paused_until_{0};
};

}  // namespace rmig::transport::dpdk
