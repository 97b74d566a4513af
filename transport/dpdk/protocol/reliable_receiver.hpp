// Receiver half of the dpdk transport's reliable ordered delivery: puts
// segments back in order, drops duplicates and segments beyond the window it
// advertised, and builds the ACK (cumulative + SACK bitmap + window limit).
// Pure C++ over an opaque payload handle P.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace rmig::transport::dpdk::proto {

enum class Arrival { delivered, stored, duplicate, beyond_window };

template <class P>
class ReliableReceiver {
public:
    // `capacity`: segments buffered out of order plus delivered-but-unread.
    explicit ReliableReceiver(uint32_t capacity) : ring_(capacity ? capacity : 1) {}

    uint64_t next_expected() const { return next_; }
    uint64_t capacity() const { return ring_.size(); }
    uint64_t newest_stamp() const { return newest_stamp_; }

    // First segment number the receiver cannot take while `backlog` delivered
    // segments wait to be read by the application.
    uint64_t limit(uint64_t backlog) const {
        return next_ + (backlog < ring_.size() ? ring_.size() - backlog : 0);
    }

    // Hands seq and, in order, every stored segment it completes to deliver(P&&).
    template <class Deliver>
    Arrival on_data(uint64_t seq, P payload, uint64_t stamp, uint64_t backlog, Deliver&& deliver) {
        if (seq < next_) return Arrival::duplicate;
        if (seq >= limit(backlog)) return Arrival::beyond_window;
        auto& slot = ring_[seq % ring_.size()];
        if (slot) return Arrival::duplicate;
        if (stamp > newest_stamp_) newest_stamp_ = stamp;
        if (seq != next_) {
            slot = std::move(payload);
            if (seq > highest_) highest_ = seq;
            return Arrival::stored;
        }
        deliver(std::move(payload));
        ++next_;
        for (;;) {
            auto& s = ring_[next_ % ring_.size()];
            if (!s) break;
            deliver(std::move(*s));
            s.reset();
            ++next_;
        }
        return Arrival::delivered;
    }

    bool has_gap() const { return highest_ > next_; }

    // SACK bitmap: bit i set when segment next_expected()+1+i is stored.
    // At most max_bytes long; empty when nothing is stored out of order.
    void sack(std::vector<std::byte>& out, size_t max_bytes) const {
        out.clear();
        if (highest_ <= next_) return;
        uint64_t bits = std::min<uint64_t>(highest_ - next_, max_bytes * 8);
        out.assign((bits + 7) / 8, std::byte{0});
        for (uint64_t i = 0; i < bits; ++i)
            if (ring_[(next_ + 1 + i) % ring_.size()])
                out[i / 8] |= static_cast<std::byte>(1u << (i % 8));
    }

    template <class Release>
    void drain(Release&& release) {
        for (auto& s : ring_)
            if (s) {
                release(std::move(*s));
                s.reset();
            }
    }

private:
    std::vector<std::optional<P>> ring_;
    uint64_t next_ = 0;
    uint64_t highest_ = 0;
    uint64_t newest_stamp_ = 0;
};

}  // namespace rmig::transport::dpdk::proto
