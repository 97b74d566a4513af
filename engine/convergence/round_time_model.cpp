#include "engine/convergence/round_time_model.hpp"

#include <algorithm>
#include <cmath>

namespace rmig::engine {

void RoundTimeModel::add(double bytes, double seconds) {
    if (!(bytes > 0) || !(seconds > 0) || !std::isfinite(bytes) || !std::isfinite(seconds)) return;
    samples_.push_back({bytes, seconds});
    if (samples_.size() > kWindow) samples_.pop_front();
    refit();
}

// Weighted least squares of seconds = a + s * bytes with weights 1 / seconds^2
// (relative error). No fit (the caller's plain average stands) unless a is
// between kLeastShare of the shortest round and all of it, explains the
// rounds clearly better than bandwidth alone, with a positive slope.
void RoundTimeModel::refit() {
    fixed_ = 0;
    bandwidth_ = 0;
    if (samples_.size() < kMinRounds) return;
    double lo = samples_.front().bytes, hi = lo, shortest = samples_.front().seconds;
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const Sample& p : samples_) {
        lo = std::min(lo, p.bytes);
        hi = std::max(hi, p.bytes);
        shortest = std::min(shortest, p.seconds);
        const double w = 1.0 / (p.seconds * p.seconds);
        sw += w;
        sx += w * p.bytes;
        sy += w * p.seconds;
        sxx += w * p.bytes * p.bytes;
        sxy += w * p.bytes * p.seconds;
    }
    if (hi < kSpread * lo) return;
    const double det = sw * sxx - sx * sx;
    if (!(det > 0)) return;
    const double slope = (sw * sxy - sx * sy) / det;
    const double a = (sxx * sy - sx * sxy) / det;
    // A fixed cost below a fifth of the shortest round changes little, and a
    // link's jitter alone fits one that small.
    if (!(slope > 0) || !std::isfinite(slope) || a < kLeastShare * shortest || a >= shortest) return;
    // The fixed cost must explain the rounds much better than bandwidth alone
    // (half the error or less): a link's jitter alone also fits a small one.
    const double origin_slope = sxy / sxx;
    double with_fixed = 0, without = 0;
    for (const Sample& p : samples_) {
        const double w = 1.0 / (p.seconds * p.seconds);
        with_fixed += w * std::pow(a + slope * p.bytes - p.seconds, 2);
        without += w * std::pow(origin_slope * p.bytes - p.seconds, 2);
    }
    if (with_fixed * 4 > without) return;
    fixed_ = a;
    bandwidth_ = 1.0 / slope;
}

}  // namespace rmig::engine
