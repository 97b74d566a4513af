// Sender half of the dpdk transport's reliable ordered delivery: numbers
// segments, keeps them until acknowledged (cumulative + selective), and says
// which to retransmit on timeout or on a gap revealed by SACKs. Pure C++ over
// an opaque payload handle P (rte_mbuf* in dpdk/, a byte vector in tests);
// times are nanoseconds of a monotonic clock supplied by the caller.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

namespace rmig::transport::dpdk::proto {

struct SenderConfig {
    uint32_t window_segments = 1024;
    uint64_t initial_rto_ns = 20'000'000;
    uint64_t min_rto_ns = 2'000'000;
    uint64_t max_rto_ns = 500'000'000;
    uint32_t dup_threshold = 3;  // a hole this many segments below the highest SACK is lost
};

// What an ACK segment says: everything below `cumulative` arrived, the
// receiver takes segments below `limit`, and bit i of `sack` (LSB first in each
// byte) means segment cumulative + 1 + i arrived too.
struct AckInfo {
    uint64_t cumulative = 0;
    uint64_t limit = 0;
    uint64_t echo_ns = 0;  // 0: no RTT sample
    std::span<const std::byte> sack;
};

inline bool sack_bit(std::span<const std::byte> bits, uint64_t i) {
    return i / 8 < bits.size() && (static_cast<uint8_t>(bits[i / 8]) >> (i % 8)) & 1u;
}

struct SenderStats {
    uint64_t segments_sent = 0;
    uint64_t timeout_retransmits = 0;
    uint64_t fast_retransmits = 0;
    uint64_t acks = 0;
};

template <class P>
class ReliableSender {
public:
    explicit ReliableSender(const SenderConfig& cfg)
        : cfg_(cfg), ring_(std::max<uint32_t>(cfg.window_segments, 1)), rto_(cfg.initial_rto_ns),
          peer_limit_(cfg.window_segments) {}

    uint64_t next_seq() const { return next_; }
    uint64_t unacked_base() const { return una_; }
    uint64_t in_flight() const { return next_ - una_; }
    bool idle() const { return next_ == una_; }
    // Room in our window and in the receiver's advertised limit.
    bool can_send() const { return next_ - una_ < ring_.size() && next_ < peer_limit_; }
    uint64_t rto_ns() const { return rto_; }
    uint64_t srtt_ns() const { return srtt_; }
    const SenderStats& stats() const { return stats_; }

    // Takes `payload` for its first transmission at `now`; returns its number.
    // The caller transmits it. Precondition: can_send().
    uint64_t push(P payload, uint64_t now) {
        if (!can_send()) throw std::logic_error("ReliableSender::push without room");
        Slot& s = slot(next_);
        s.payload = std::move(payload);
        s.sent_ns = now;
        s.sacked = false;
        s.used = true;
        ++stats_.segments_sent;
        if (idle_since_push_) {
            last_progress_ns_ = now;
            idle_since_push_ = false;
        }
        return next_++;
    }

    // Applies an ACK; hands every segment it completes to release(P&&) in order.
    template <class Release>
    void on_ack(const AckInfo& a, uint64_t now, Release&& release) {
        ++stats_.acks;
        if (a.limit > peer_limit_) peer_limit_ = a.limit;
        if (a.echo_ns && a.echo_ns <= now) sample_rtt(now - a.echo_ns);
        uint64_t cum = std::min(a.cumulative, next_);
        if (cum > una_) {
            while (una_ < cum) {
                Slot& s = slot(una_);
                s.used = false;
                release(std::move(s.payload));
                s.payload = P{};
                ++una_;
            }
            rto_ = base_rto();  // progress ends any timeout backoff
            last_progress_ns_ = now;
        }
        if (una_ == next_) idle_since_push_ = true;
        for (uint64_t i = 0; i < a.sack.size() * 8; ++i) {
            uint64_t seq = cum + 1 + i;
            if (seq >= next_) break;
            if (seq >= una_ && sack_bit(a.sack, i)) {
                slot(seq).sacked = true;
                highest_sacked_ = std::max(highest_sacked_, seq);
            }
        }
    }

    // Calls retransmit(seq, P&) -> bool for each segment due again at `now`
    // (false: the caller did not send it, e.g. its first copy has not left yet): unacked
    // for an RTO, or a hole at least dup_threshold below the highest SACKed
    // segment that was last sent more than one RTT ago. At most `max` calls.
    // Scans the whole window: callers rate-limit it (dpdk/ does, per poll).
    template <class Retransmit>
    size_t collect_retransmits(uint64_t now, size_t max, Retransmit&& retransmit) {
        size_t n = 0;
        bool timed_out = false;
        for (uint64_t seq = una_; seq < next_ && n < max; ++seq) {
            Slot& s = slot(seq);
            if (s.sacked) continue;
            uint64_t age = now - std::min(now, s.sent_ns);
            bool timeout = age >= rto_;
            bool gap = highest_sacked_ >= seq + cfg_.dup_threshold && highest_sacked_ < next_ &&
                       age >= std::max<uint64_t>(srtt_ + srtt_ / 2, cfg_.min_rto_ns / 4);
            if (!timeout && !gap) continue;
            s.sent_ns = now;  // re-armed either way
            if (!retransmit(seq, s.payload)) continue;  // still waiting to leave: not lost
            if (timeout) {
                ++stats_.timeout_retransmits;
                timed_out = true;
            } else {
                ++stats_.fast_retransmits;
            }
            ++n;
        }
        if (timed_out) rto_ = std::min(rto_ * 2, cfg_.max_rto_ns);
        return n;
    }

    // Nanoseconds at which the oldest unacknowledged segment last made
    // progress: with nothing acknowledged for dead_peer_timeout, the peer is gone.
    uint64_t last_progress_ns() const { return last_progress_ns_; }

    // Hands back every payload still held (closing the connection).
    template <class Release>
    void drain(Release&& release) {
        for (; una_ < next_; ++una_) {
            Slot& s = slot(una_);
            if (s.used) release(std::move(s.payload));
            s.used = false;
        }
    }

private:
    struct Slot {
        P payload{};
        uint64_t sent_ns = 0;
        bool sacked = false;
        bool used = false;
    };
    Slot& slot(uint64_t seq) { return ring_[seq % ring_.size()]; }

    uint64_t base_rto() const {
        if (srtt_ == 0) return cfg_.initial_rto_ns;
        return std::clamp(srtt_ + 4 * rttvar_, cfg_.min_rto_ns, cfg_.max_rto_ns);
    }

    void sample_rtt(uint64_t r) {
        if (srtt_ == 0) {
            srtt_ = r;
            rttvar_ = r / 2;
        } else {
            uint64_t d = r > srtt_ ? r - srtt_ : srtt_ - r;
            rttvar_ = (3 * rttvar_ + d) / 4;
            srtt_ = (7 * srtt_ + r) / 8;
        }
    }

    SenderConfig cfg_;
    std::vector<Slot> ring_;
    uint64_t next_ = 0, una_ = 0;
    uint64_t highest_sacked_ = 0;
    uint64_t rto_;
    uint64_t srtt_ = 0, rttvar_ = 0;
    uint64_t peer_limit_;
    uint64_t last_progress_ns_ = 0;
    bool idle_since_push_ = true;
    SenderStats stats_;
};

}  // namespace rmig::transport::dpdk::proto
