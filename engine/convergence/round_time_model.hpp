// How long a pre-copy round takes for the bytes it sends:
//   seconds = fixed + bytes / bandwidth
// `fixed` is what a round costs whatever its size (collecting the dirty log,
// the round's closing handshake with the destination); it is why short rounds
// near the end move fewer bytes per second than long ones, and why a dirty
// rate well below the link can still stall pre-copy. Fitted by least squares
// on the relative error over the last rounds (a 4 GiB round and a 40 MiB one
// count alike), once the rounds differ enough in size to tell the two terms
// apart. Only a fixed cost that clearly shows counts: until then, or when
// the fit is not physical, there is no fit and the caller uses a plain
// bandwidth average.
#pragma once

#include <cstddef>
#include <deque>

namespace rmig::engine {

class RoundTimeModel {
public:
    // One round: `bytes` sent in `seconds`. Rounds without bytes or time are ignored.
    void add(double bytes, double seconds);

    bool fitted() const noexcept { return bandwidth_ > 0; }
    double fixed_seconds() const noexcept { return fixed_; }  // 0 unless fitted
    double bandwidth() const noexcept { return bandwidth_; }  // bytes/s; 0 unless fitted
    double seconds_for(double bytes) const noexcept { return fixed_ + bytes / bandwidth_; }  // fitted only

    static constexpr size_t kWindow = 6;     // rounds the fit looks back on
    static constexpr size_t kMinRounds = 3;  // two always fit exactly, jitter included
    // The largest round must be this many times the smallest for a fit.
    static constexpr double kSpread = 2.0;
    // The least fixed cost that counts, as a share of the shortest round.
    static constexpr double kLeastShare = 0.2;

private:
    void refit();

    struct Sample {
        double bytes, seconds;
    };
    std::deque<Sample> samples_;
    double fixed_ = 0;
    double bandwidth_ = 0;
};

}  // namespace rmig::engine
