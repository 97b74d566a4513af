#include "engine/convergence/rate_estimator.hpp"

#include <cmath>

#include "common/error.hpp"

namespace rmig::engine {

RateEstimator::RateEstimator(double alpha, unsigned min_samples) : alpha_(alpha), min_samples_(min_samples) {
    if (!(alpha > 0.0 && alpha <= 1.0)) throw Error(cat("rate estimator: alpha ", alpha, " must be in (0, 1]"));
    if (min_samples == 0) throw Error("rate estimator: min_samples must be at least 1");
}

void RateEstimator::add(double bytes, double seconds) {
    if (!std::isfinite(bytes) || !std::isfinite(seconds) || bytes < 0 || seconds <= 0)
        throw Error(cat("rate estimator: invalid sample of ", bytes, " bytes in ", seconds, " s"));
    last_ = bytes / seconds;
    rate_ = samples_ == 0 ? last_ : alpha_ * last_ + (1.0 - alpha_) * rate_;
    ++samples_;
}

void RateEstimator::reset() noexcept {
    samples_ = 0;
    rate_ = 0;
    last_ = 0;
}

}  // namespace rmig::engine
