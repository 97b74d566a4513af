#include "qemu-plugin/downtime_budget.hpp"

#include <algorithm>
#include <cmath>

namespace rmig::qemu {

DowntimeBudget plan_downtime(uint64_t user_limit_ms, uint64_t in_flight_bytes, double drain_rate,
                             double resume_ms) {
    DowntimeBudget b;
    b.drain_ms = drain_rate > 0 ? double(in_flight_bytes) / drain_rate * 1000.0 : 0.0;
    b.resume_ms = resume_ms;
    double floor = std::max(1.0, std::ceil(double(user_limit_ms) * kQemuFloorShare));
    double left = double(user_limit_ms) - b.drain_ms - b.resume_ms;
    b.floored = left < floor;
    b.qemu_limit_ms = static_cast<uint64_t>(b.floored ? floor : std::floor(left));
    return b;
}

void RateMeter::add(double t_s, uint64_t total_bytes) {
    if (!samples_.empty() && (t_s <= samples_.back().first || total_bytes < samples_.back().second))
        samples_.clear();  // time went backwards or the counter was reset: start over
    samples_.emplace_back(t_s, total_bytes);
    while (samples_.size() > 2 && samples_.back().first - samples_[1].first >= window_) samples_.pop_front();
}

double RateMeter::rate() const {
    if (samples_.size() < 2) return 0;
    double span = samples_.back().first - samples_.front().first;
    if (span < window_ / 4) return 0;
    return double(samples_.back().second - samples_.front().second) / span;
}

}  // namespace rmig::qemu
