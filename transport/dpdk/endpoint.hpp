// One DPDK port used by rmig in this process: the device (probed from the URI's
// devargs if the EAL did not create it), its mbuf pool, one rx/tx queue pair
// on which every connection is multiplexed by connection id, and the poller
// thread that moves frames and runs the protocol timers. Shared by the
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
    bool link_up() const;
    // Waits up to `timeout` for link up; throws Error saying what to check.
    void require_link(Millis timeout) const;

    std::shared_ptr<Connection> create(uint32_t id, bool acceptor, const rte_ether_addr& peer,
                                       const ConnConfig& cfg, const std::string& name);
    void remove(const Connection& c);

    // Listening: SYNs create acceptor-side connections queued here.
    void start_listening(const ConnConfig& cfg);
    void stop_listening();
    std::shared_ptr<Connection> next_incoming(Millis timeout);

    // Poller-thread helpers for Connection::service.
    rte_mbuf* alloc();
    void fill_headers(rte_mbuf* m, const rte_ether_addr& dst, const proto::SegmentHeader& h);
    void send_control(const rte_ether_addr& dst, const proto::SegmentHeader& h,
                      std::span<const std::byte> payload = {});
    void queue_tx(rte_mbuf* m);  // takes one reference
    // False while the tx ring is full and frames wait: send no new data then.
    bool tx_room() const { return tx_batch_.size() < 128; }
    bool queued_for_tx(const rte_mbuf* m) const {
        return std::find(tx_batch_.begin(), tx_batch_.end(), m) != tx_batch_.end();
    }

private:
    Endpoint(const DpdkUri& uri, const Options& opts);
    void setup(const DpdkUri& uri);
    void release_port();
    void poll_loop();
    size_t poll_once(uint64_t now);
    void handle(rte_mbuf* m, uint64_t now);
    void flush_tx();
    void goodbye();

    std::string name_;
    bool probed_ = false;
    uint16_t port_ = 0;
    rte_mempool* pool_ = nullptr;
    uint32_t mtu_ = 1500, mss_ = 1460;
    rte_ether_addr mac_{};
    bool started_ = false, configured_ = false;

    std::mutex m_;  // guards conns_, listening state, incoming_
    std::condition_variable incoming_cv_;
    std::map<uint64_t, std::shared_ptr<Connection>> conns_;  // key: id * 2 + (we accept ? 1 : 0)
    bool listening_ = false;
    ConnConfig listen_cfg_;
    std::deque<std::shared_ptr<Connection>> incoming_;

    std::vector<rte_mbuf*> tx_batch_;
    std::atomic<bool> stop_{false};
    bool peer_said_bye_ = false, got_bye_ack_ = false;
    uint64_t rx_paused_until_ = 0;
    uint64_t unknown_rst_ns_ = 0;
    std::thread poller_;
};

}  // namespace rmig::transport::dpdk
