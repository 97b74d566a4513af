// Endpoint: the poller threads, one per queue pair, that move frames and run
// the timers of the connections placed on their queue (docs/dpdk-protocol.md,
// "Queues"); and the BYE handshake that ends a port's life ("Port shutdown").
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/log.hpp"
#include "transport/dpdk/endpoint.hpp"

namespace rmig::transport::dpdk {

void Endpoint::start_pollers() {
    try {
        for (uint16_t q = 0; q < queues_.size(); ++q)
            queues_[q]->poller = std::thread([this, q] { poll_loop(q); });
    } catch (...) {
        stop_pollers();  // the destructor of a half-made endpoint does not run
        throw;
    }
}

void Endpoint::stop_pollers() {
    stop_ = true;
    for (auto& q : queues_)
        if (q->poller.joinable()) q->poller.join();
}

void Endpoint::flush_tx(uint16_t q) {
    auto& b = queues_[q]->tx_batch;
    size_t sent = b.transmit(port_id(), q, 4);
    queues_[q]->tx_frames.fetch_add(sent, std::memory_order_relaxed);
    // A full tx ring (the peer polls slower than we send) holds frames back for
    // the next round; connections stop adding new data meanwhile (tx_room).
    // Only far beyond that are frames dropped: retransmission repairs them.
    if (b.size() > kTxBacklogMax) b.truncate(kTxBacklogMax);
}

void Endpoint::refresh(uint16_t q, PollerView& view) {
    uint64_t g = conns_generation_.load(std::memory_order_acquire);
    if (g == view.generation) return;
    std::lock_guard lock(m_);
    view.generation = conns_generation_.load(std::memory_order_relaxed);
    view.all = conns_;
    view.mine.clear();
    for (auto& [k, c] : conns_)
        if (c->queue() == q) view.mine.push_back(c);
}

size_t Endpoint::poll_once(uint16_t q, PollerView& view, uint64_t now) {
    size_t work = 0;
    refresh(q, view);
    std::lock_guard burst(queues_[q]->burst);
    if (uint64_t paused = rx_paused_until_.load()) {
        if (now < paused && link_up()) return 0;
        rx_paused_until_.compare_exchange_strong(paused, 0);
    }
    Mbuf rx[kBurst];
    uint16_t n = rx_burst(port_id(), q, rx);
    queues_[q]->rx_frames.fetch_add(n, std::memory_order_relaxed);
    for (uint16_t i = 0; i < n; ++i) handle(q, view, std::move(rx[i]), now);
    work += n;
    for (auto& c : view.mine) work += c->service(now);
    flush_tx(q);
    return work;
}

void Endpoint::poll_loop(uint16_t q) {
    rte_thread_register();  // an lcore id gives the mempool a per-thread cache
    PollerView view;
    uint64_t idle_since = 0;
    const bool debug = std::getenv("RMIG_DPDK_DEBUG") != nullptr;
    uint64_t last_debug = now_ns();
    while (!stop_) {
        uint64_t now = now_ns();
        if (debug && now - last_debug > 2'000'000'000) {
            last_debug = now;
            log::warn("dpdk debug ", port_name(), " queue ", q, ": pool avail ",
                      rte_mempool_avail_count(pool()), " in use ", rte_mempool_in_use_count(pool()),
                      " tx backlog ", queues_[q]->tx_batch.size(), " link ", link_up());
            for (auto& c : view.mine) log::warn("  ", c->debug_state());
        }
        if (poll_once(q, view, now) > 0) {
            idle_since = 0;
            continue;
        }
        if (!idle_since) idle_since = now;
        // Busy-poll while traffic is recent, then back off so an idle port
        // does not burn a CPU (the test machines have two).
        if (now - idle_since > 2'000'000)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        else if (now - idle_since > 100'000)
            std::this_thread::yield();
    }
    {
        std::lock_guard burst(queues_[q]->burst);
        flush_tx(q);
    }
    rte_thread_unregister();
}

void Endpoint::goodbye() {
    // Tell the peer port we go, and wait (briefly) until it stopped polling
    // before the device closes (docs/dpdk-protocol.md, "Port shutdown").
    bool sent_bye = !peer_said_bye_ && link_up();
    if (sent_bye) say_bye();
    if (!peer_said_bye_ || !memif_) return;
    // DPDK 22.11's memif frees its shared regions in memif_disconnect, which
    // both our dev_close and its control thread (on the peer's disconnect
    // message) run; run at once, they free twice ("EAL: Error: Invalid
    // memory" at exit, seen with jumbo bsize). So the side the peer said BYE
    // to lets the peer close first: it waits (up to 1 s) for the link to drop.
    // When both said BYE at once, the memif client closes first.
    if (!(sent_bye && memif_client_)) {
        uint64_t start = now_ns();
        while (link_up() && now_ns() - start < 1'000'000'000)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

void Endpoint::say_bye() {
    proto::SegmentHeader bye;
    bye.type = proto::SegmentType::bye;
    rte_ether_addr bcast;
    memset(&bcast, 0xff, sizeof bcast);
    uint64_t start = now_ns(), last = 0;
    while (!got_bye_ack_ && !peer_said_bye_ && now_ns() - start < 300'000'000) {
        uint64_t now = now_ns();
        if (now - last > 20'000'000) {
            std::lock_guard burst(queues_[0]->burst);
            send_control(0, bcast, bye);
            flush_tx(0);
            last = now;
        }
        // Only BYE and BYE_ACK matter now; the connections are gone or failing.
        Mbuf rx[kBurst];
        uint16_t n = 0;
        for (uint16_t q = 0; q < queues_.size() && !n; ++q) {
            std::lock_guard burst(queues_[q]->burst);
            n = rx_burst(port_id(), q, rx);
        }
        for (uint16_t i = 0; i < n; ++i)
            if (auto f = decode_frame(std::move(rx[i]))) on_frame_while_leaving(*f);
        if (!n) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
}

void Endpoint::on_frame_while_leaving(const Frame& f) {
    if (f.h.type == proto::SegmentType::bye_ack) got_bye_ack_ = true;
    if (f.h.type == proto::SegmentType::bye) {
        proto::SegmentHeader ack;
        ack.type = proto::SegmentType::bye_ack;
        std::lock_guard burst(queues_[0]->burst);
        send_control(0, f.from, ack);
        flush_tx(0);
        peer_said_bye_ = true;
    }
}

}  // namespace rmig::transport::dpdk
