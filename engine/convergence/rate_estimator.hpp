// Smoothed rate of a byte stream measured in samples (one per pre-copy round):
// the link bandwidth, and the guest's dirty rate.
#pragma once

#include <cstdint>

namespace rmig::engine {

// Exponentially weighted moving average of per-sample rates:
//   r_1 = bytes_1 / seconds_1
//   r_n = alpha * (bytes_n / seconds_n) + (1 - alpha) * r_{n-1}
// alpha = 1 keeps only the newest sample; small alpha smooths more but reacts
// later. Rounds vary in length by orders of magnitude (the first copies all of
// RAM, the last a few MiB), so each sample counts once whatever its duration:
// the recent, short rounds are the ones that resemble the next round.
class RateEstimator {
public:
    // Throws Error unless 0 < alpha <= 1 and min_samples >= 1.
    explicit RateEstimator(double alpha = 0.5, unsigned min_samples = 1);

    // One sample: `bytes` moved in `seconds`. Throws Error on seconds <= 0,
    // bytes < 0 or a non-finite value (a caller bug, not a runtime condition).
    void add(double bytes, double seconds);

    // True once min_samples samples were added since construction / reset().
    bool ready() const noexcept { return samples_ >= min_samples_; }
    // Smoothed rate in bytes per second; 0 before the first sample.
    double rate() const noexcept { return rate_; }
    // The newest sample's own rate; 0 before the first sample.
    double last() const noexcept { return last_; }
    unsigned samples() const noexcept { return samples_; }
    unsigned min_samples() const noexcept { return min_samples_; }

    // Forget all samples: what was measured no longer describes the source
    // (e.g. the guest was just throttled).
    void reset() noexcept;

private:
    double alpha_;
    unsigned min_samples_;
    unsigned samples_ = 0;
    double rate_ = 0;
    double last_ = 0;
};

}  // namespace rmig::engine
