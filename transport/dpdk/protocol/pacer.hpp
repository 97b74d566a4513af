// Token-bucket pacing for the dpdk transport's sender: at most `bytes_per_sec`
// on average with bursts of up to `burst_bytes`. A rate of 0 means unpaced.
#pragma once

#include <algorithm>
#include <cstdint>

namespace rmig::transport::dpdk::proto {

class Pacer {
public:
    Pacer(uint64_t bytes_per_sec, uint64_t burst_bytes)
        : rate_(bytes_per_sec), burst_(std::max<uint64_t>(burst_bytes, 1)), tokens_(burst_) {}

    bool unpaced() const { return rate_ == 0; }

    // True (and the bytes are spent) if `bytes` may leave at `now_ns`.
    bool take(uint64_t bytes, uint64_t now_ns) {
        if (rate_ == 0) return true;
        refill(now_ns);
        if (tokens_ < bytes && tokens_ < burst_) return false;
        tokens_ = tokens_ > bytes ? tokens_ - bytes : 0;
        return true;
    }

private:
    void refill(uint64_t now_ns) {
        if (last_ns_ == 0 || now_ns < last_ns_) {
            last_ns_ = now_ns;
            return;
        }
        uint64_t add = static_cast<uint64_t>(static_cast<double>(now_ns - last_ns_) * 1e-9 *
                                             static_cast<double>(rate_));
        if (add == 0) return;
        tokens_ = std::min(burst_, tokens_ + add);
        last_ns_ = now_ns;
    }

    uint64_t rate_, burst_, tokens_;
    uint64_t last_ns_ = 0;
};

// Window in segments from a bandwidth-delay product: link_gbps * rtt, in
// segments of `segment_bytes`, times `headroom` (2 covers ack delay and
// retransmission), clamped to [min, max].
inline uint32_t window_from_bdp(double link_gbps, double rtt_us, uint32_t segment_bytes,
                                uint32_t min_segments = 64, uint32_t max_segments = 16384,
                                double headroom = 2.0) {
    double bytes = link_gbps * 1e9 / 8 * rtt_us * 1e-6 * headroom;
    double segs = bytes / std::max<uint32_t>(segment_bytes, 1);
    return static_cast<uint32_t>(std::clamp(segs, double(min_segments), double(max_segments)));
}

}  // namespace rmig::transport::dpdk::proto
