// The receiving half of one stream in channel mode's flow protocol: segments
// arrive on any flow in any order (and some twice, after a resend); they are
// handed to QEMU strictly in stream order, each byte once. Bounded by the
// peer's send window (what it may have unacknowledged): a segment beyond it
// is refused. Nothing here waits for room, since the segment everyone waits
// for may be queued behind the one being put, on the same flow.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace rmig::qemu {

struct InSegment {
    uint64_t offset = 0;
    bool fin = false;
    std::vector<std::byte> bytes;  // the raw bytes are bytes[skip, skip + len)
    size_t skip = 0;
    size_t len = 0;
};

class ReorderBuffer {
public:
    // `capacity`: the peer's send window.
    explicit ReorderBuffer(size_t capacity) : capacity_(capacity) {}

    enum class Put { stored, duplicate, closed };
    // Stores a decoded segment. Throws ProtocolError (naming `channel`) for a
    // segment that contradicts what came before: overlapping another one at
    // a different offset, or data after the end.
    Put put(InSegment seg, const std::string& channel);
    // The next segment in order (offset == delivered()), or nullopt after
    // `wait` or once closed. The caller writes it, then calls delivered(n).
    std::optional<InSegment> next(std::chrono::milliseconds wait);
    void mark_delivered(const InSegment& seg);
    void close();

    uint64_t delivered() const;
    bool fin_delivered() const;
    size_t held_bytes() const;

private:
    size_t capacity_;
    mutable std::mutex mu_;
    std::condition_variable ready_;
    std::map<uint64_t, InSegment> pending_;  // by offset, all >= delivered_
    size_t held_ = 0;
    uint64_t delivered_ = 0;
    std::optional<uint64_t> end_;  // stream length, once the fin arrived
    bool taken_ = false;           // the next segment is out with the writer
    bool fin_delivered_ = false, closed_ = false;
};

}  // namespace rmig::qemu
