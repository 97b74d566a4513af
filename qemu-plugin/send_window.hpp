// The sending half of one stream in channel mode's flow protocol
// (wire/stream_segment.hpp): segments cut from QEMU's stream wait here until
// a flow takes them, and stay until the peer acknowledges them, so a flow
// that breaks gives its unacknowledged segments back for another flow (or
// its replacement) to resend. Bounded: push() blocks while the window holds
// `capacity` bytes, which is what holds QEMU back on a slow link.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "wire/stream_segment.hpp"

namespace rmig::qemu {

struct OutSegment {
    wire::SegmentHeader header;
    // The frame payload: the encoded header, then the bytes as they go on
    // the wire (compressed by the first flow that sends it, then kept so a
    // resend costs no second compression).
    std::vector<std::byte> frame;
    bool encoded = false;  // frame holds its final (maybe compressed) form
    std::mutex encoding;   // a resend may race a stalled first send
    std::atomic<uint32_t> sends{0};
};

class SendWindow {
public:
    explicit SendWindow(size_t capacity) : capacity_(capacity) {}

    // Adds the next segment (offsets must follow each other). Blocks while
    // the window is full; false if closed meanwhile.
    bool push(std::shared_ptr<OutSegment> seg);
    // The lowest-offset segment no live flow carries, now marked as sent on
    // `flow`; nullptr after `wait` or once closed.
    std::shared_ptr<OutSegment> take(uint32_t flow, std::chrono::milliseconds wait);
    // The peer delivered everything below `ack.delivered` (and the end, if
    // ack.fin): those segments are dropped. An older ack than one seen (it
    // came on a slower flow) changes nothing. Returns false for an ack past
    // what was sent (a broken peer).
    bool acknowledge(const wire::Ack& ack);
    // `flow` broke: what it carried and was not acknowledged is sent again.
    void flow_lost(uint32_t flow);
    void close();  // wakes every waiter; push/take return false/nullptr
    // A new bound for what push() lets in (what is held now stays).
    void set_capacity(size_t capacity);
    // Wakes the flows waiting in take() (which return nullptr), e.g. so one
    // of them sends an acknowledgement.
    void poke();

    bool all_acknowledged() const;  // the end segment was pushed and acknowledged
    uint64_t acknowledged() const;
    uint64_t pushed() const;  // raw bytes pushed
    size_t held_bytes() const;
    // How long the oldest unacknowledged segment has been out on a flow, and
    // which flow: a flow that holds a segment far longer than the link's
    // round trip has stalled (a silent outage).
    struct Oldest {
        bool any = false;
        uint32_t flow = 0;
        std::chrono::steady_clock::duration age{};
    };
    Oldest oldest_in_flight() const;

private:
    struct Entry {
        std::shared_ptr<OutSegment> seg;
        bool on_flow = false;
        uint32_t flow = 0;
        std::chrono::steady_clock::time_point sent_at{};
    };
    static size_t size_of(const Entry& e) { return e.seg->header.raw_len; }

    size_t capacity_;
    mutable std::mutex mu_;
    std::condition_variable space_, work_;
    std::deque<Entry> entries_;  // unacknowledged, by offset
    size_t held_ = 0;
    uint64_t acked_ = 0, pushed_ = 0;
    bool fin_pushed_ = false, fin_acked_ = false, closed_ = false, poked_ = false;
};

}  // namespace rmig::qemu
