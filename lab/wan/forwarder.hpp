// One direction of one emulated path: a thread that reads packets from one
// TUN device, asks its PacketScheduler what happens to each segment, holds
// what it forwards until its release time and writes it into the other TUN
// device.
//
// It sleeps in ppoll(2) until a packet arrives or the next one is due
// (nanosecond timeouts, timer slack cut to 1 us: poll(2)'s milliseconds and
// the default 50 us slack would bunch up releases that a 1 Gbit/s link spaces
// 12 us apart), reads what is ready without blocking (a bounded batch, so due
// packets are not held up behind a flood) and writes what is due. Idle, it
// blocks with no timeout: no spinning.
//
// `coalesce` lets a packet leave up to that much after its release time, so
// one wake-up writes everything due within it: on this machine (a PVM guest,
// where every context switch goes through the hypervisor) waking for each
// packet cost more than forwarding it.
//
// With offloads (tcp_segments.hpp), a packet read may stand for many TCP
// segments: each segment goes through the scheduler on its own, and the
// forwarded ones leave in runs, whole if the scheduler kept them together,
// otherwise rebuilt: a run ends at a dropped or reordered segment, or when
// its segments' release times would spread over more than kRunSpan (they
// are then delivered together at the last one's time, as a NIC's interrupt
// moderation and GRO would).
//
// A shape with reset outages (link_shape.hpp) gives the forwarder a
// ConnectionFirewall (reset_firewall.hpp): while the path is up, each packet
// read is checked before the model sees it, and one of a connection the path
// has forgotten is dropped whole (a TSO packet once) and answered with a
// reset written back into the device it came from.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "lab/wan/packet_scheduler.hpp"
#include "lab/wan/reset_firewall.hpp"
#include "lab/wan/tcp_segments.hpp"

namespace rmig::wan {

// CLOCK_MONOTONIC, the clock the forwarders hand their schedulers.
Nanos monotonic_now();

// Memory a forwarder may hold for packets of `shape`: three times what the
// shape keeps in flight (its queue, plus rate x delay on the wire; three for
// buffers only partly filled), at least 128 MiB; 256 MiB without a rate,
// where TCP's windows alone bound what is in flight.
size_t held_bytes_bound(const LinkShape& shape);

// Packets are segments and bytes their IP bytes, so the counts mean the same
// with or without offloads; `reads` and `writes` count what crossed the
// devices (one TSO packet: one read, many segments). Every segment read is
// forwarded, dropped for one reason, or still held:
//   packets_in = packets_out + dropped_queue + dropped_loss + dropped_outage
//                + dropped_reset + dropped_overflow + write_errors + (segments held).
// `resets_sent` is not in the sum: resets the emulator made (one per packet
// dropped as reset, a TSO packet counting once, none for a dropped reset),
// written back to the near side, not segments that were read.
struct DirectionStats {
    uint64_t packets_in = 0, bytes_in = 0;
    uint64_t packets_out = 0, bytes_out = 0;  // written to the far side
    uint64_t dropped_queue = 0, dropped_loss = 0, dropped_outage = 0;
    // A reset outage has ended and the segment's connection started before:
    // forgotten by the path (reset_firewall.hpp).
    uint64_t dropped_reset = 0, resets_sent = 0;
    // The emulator's own limits, not the shape's: more bytes held than its
    // memory bound allows, or segments the far side's TUN refused.
    uint64_t dropped_overflow = 0, write_errors = 0;
    uint64_t reads = 0, writes = 0;
    uint64_t held = 0;          // packets (runs) in flight, queued or propagating, when sampled
    uint64_t buffer_bytes = 0;  // memory taken for packets: its peak (buffers are reused), within the bound
};

class Forwarder {
public:
    static constexpr int kReadBatch = 64;
    static constexpr Nanos kRunSpan = std::chrono::microseconds(100);

    // Starts the thread. `from` and `to` stay owned by the caller and must
    // outlive the Forwarder. `mtu`: the devices' MTU; `offload`: the devices
    // were opened with offloads (every packet has a vnet header);
    // `max_held_bytes`: memory for packets in flight (queued or propagating),
    // beyond which packets are dropped as overflow (held_bytes_bound()).
    Forwarder(std::string label, int from, int to, PacketScheduler scheduler, unsigned mtu, bool offload,
              Nanos coalesce, size_t max_held_bytes);
    ~Forwarder();  // stops the thread; packets still held are dropped
    Forwarder(const Forwarder&) = delete;
    Forwarder& operator=(const Forwarder&) = delete;

    const std::string& label() const { return label_; }
    DirectionStats stats() const;

private:
    struct Held {
        Nanos release;
        uint64_t seq;  // arrival order: ties in release time keep it
        uint32_t buffer;
        uint32_t length;
        uint32_t segments;
        uint32_t wire_bytes;
        bool operator>(const Held& o) const { return release != o.release ? release > o.release : seq > o.seq; }
    };
    struct Buffer {
        std::unique_ptr<unsigned char[]> data;
        size_t size_class = 0;  // index into class_size_
    };
    // A run of forwarded segments of one packet, all released at `release`.
    struct Run {
        size_t first = 0, n = 0;
        Nanos first_release{0}, release{0};
        size_t wire_bytes = 0;
    };

    void run();
    void read_batch();
    void schedule(uint32_t buffer, size_t length);
    void hold(uint32_t buffer, size_t length, const Run& run);
    void hold_run(uint32_t source, const Segments& s, const Run& run, bool& source_taken);
    void deliver_due(Nanos now);
    // Writes the reset answering `ip` (an IPv4 packet) into `from_`.
    void send_reset(const unsigned char* ip, size_t len);
    // The smallest class that holds `bytes`; -1 if that would go over the bound.
    int take_buffer(size_t bytes);
    void give_back(uint32_t buffer);
    size_t capacity(uint32_t buffer) const { return class_size_[buffers_[buffer].size_class]; }
    static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);  // one writer: this thread
    }

    std::string label_;
    int from_, to_;
    PacketScheduler scheduler_;
    std::optional<ConnectionFirewall> firewall_;  // only with reset outages
    bool offload_;
    Nanos coalesce_;
    size_t max_held_bytes_;
    // Buffer sizes, smallest first: one packet of the MTU; with offloads also
    // runs of segments (a 1 Gbit/s run of 100 us is ~12 KiB) and whole TSO
    // packets, so a held run does not pin 64 KiB.
    std::vector<size_t> class_size_;
    std::vector<Buffer> buffers_;
    std::vector<std::vector<uint32_t>> free_;  // per class
    size_t allocated_bytes_ = 0;
    std::vector<unsigned char> scratch_;  // reads that have no buffer, to drain the device
    std::priority_queue<Held, std::vector<Held>, std::greater<Held>> held_;
    uint64_t seq_ = 0;

    std::atomic<uint64_t> packets_in_{0}, bytes_in_{0}, packets_out_{0}, bytes_out_{0};
    std::atomic<uint64_t> dropped_queue_{0}, dropped_loss_{0}, dropped_outage_{0};
    std::atomic<uint64_t> dropped_reset_{0}, resets_sent_{0};
    std::atomic<uint64_t> dropped_overflow_{0}, write_errors_{0}, reads_{0}, writes_{0}, held_count_{0};
    std::atomic<uint64_t> buffer_bytes_{0};

    UniqueFd stop_;  // eventfd: readable = stop
    std::thread thread_;
};

}  // namespace rmig::wan
