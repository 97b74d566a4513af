// One direction of one emulated path: a thread that reads packets from one
// TUN device, asks its PacketScheduler what happens to each, holds the
// forwarded ones until their release time and writes them into the other TUN
// device.
//
// It sleeps in ppoll(2) until a packet arrives or the next one is due
// (nanosecond timeouts, timer slack cut to 1 us: poll(2)'s milliseconds and
// the default 50 us slack would bunch up releases that a 1 Gbit/s link spaces
// 12 us apart), reads what is ready without blocking (a bounded batch, so due
// packets are not held up behind a flood) and writes what is due. Idle, it
// blocks with no timeout: no spinning.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "lab/wan/packet_scheduler.hpp"

namespace rmig::wan {

// CLOCK_MONOTONIC, the clock the forwarders hand their schedulers.
Nanos monotonic_now();

struct DirectionStats {
    uint64_t packets_in = 0, bytes_in = 0;
    uint64_t packets_out = 0, bytes_out = 0;  // written to the far side
    uint64_t dropped_queue = 0, dropped_loss = 0, dropped_outage = 0;
    // The emulator's own limits, not the shape's: more packets held than
    // kMaxHeldBytes allows, or the far side's TUN refused a write.
    uint64_t dropped_overflow = 0, write_errors = 0;
    uint64_t held = 0;  // in flight (queued or propagating) when sampled
};

class Forwarder {
public:
    // Memory for packets in flight (queued at the bottleneck or propagating):
    // 10 Gbit/s x 50 ms fits; beyond it, packets are dropped as overflow.
    static constexpr size_t kMaxHeldBytes = 128u << 20;
    static constexpr int kReadBatch = 64;

    // Starts the thread. `from` and `to` stay owned by the caller and must
    // outlive the Forwarder. `mtu`: the devices' MTU (the largest packet).
    Forwarder(std::string label, int from, int to, PacketScheduler scheduler, unsigned mtu);
    ~Forwarder();  // stops the thread; packets still held are dropped
    Forwarder(const Forwarder&) = delete;
    Forwarder& operator=(const Forwarder&) = delete;

    const std::string& label() const { return label_; }
    DirectionStats stats() const;

private:
    struct Held {
        Nanos release;
        uint64_t seq;  // arrival order: ties in release time keep it
        uint32_t slot;
        uint32_t length;
        bool operator>(const Held& o) const { return release != o.release ? release > o.release : seq > o.seq; }
    };

    void run();
    void read_batch();
    void deliver_due(Nanos now);
    int take_slot();  // -1 if the pool is at kMaxHeldBytes
    static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);  // one writer: this thread
    }

    std::string label_;
    int from_, to_;
    PacketScheduler scheduler_;
    size_t slot_size_;
    size_t max_slots_;
    std::vector<std::unique_ptr<unsigned char[]>> slots_;
    std::vector<uint32_t> free_slots_;
    std::vector<unsigned char> scratch_;  // reads that have no slot, to drain the device
    std::priority_queue<Held, std::vector<Held>, std::greater<Held>> held_;
    uint64_t seq_ = 0;

    std::atomic<uint64_t> packets_in_{0}, bytes_in_{0}, packets_out_{0}, bytes_out_{0};
    std::atomic<uint64_t> dropped_queue_{0}, dropped_loss_{0}, dropped_outage_{0};
    std::atomic<uint64_t> dropped_overflow_{0}, write_errors_{0}, held_count_{0};

    UniqueFd stop_;  // eventfd: readable = stop
    std::thread thread_;
};

}  // namespace rmig::wan
