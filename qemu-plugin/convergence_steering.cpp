#include "qemu-plugin/convergence_steering.hpp"

#include <algorithm>
#include <cmath>

namespace rmig::qemu {

namespace {

constexpr double kMaxDirtyRatio = 0.9;

unsigned clamp_percent(double p, unsigned lo) {
    return static_cast<unsigned>(std::clamp(std::ceil(p), static_cast<double>(lo), 99.0));
}

}  // namespace

ConvergenceView ConvergenceSteering::update(const MigrationStats& st, double link_rate, uint64_t qemu_limit_ms) {
    ConvergenceView v;
    v.throttle_percent = st.cpu_throttle_percentage;
    v.dirty_rate = static_cast<double>(st.dirty_pages_rate) * static_cast<double>(st.page_size ? st.page_size : 4096);
    v.link_rate = link_rate;
    // QEMU measures the dirty rate from its second sync on.
    if (link_rate <= 0 || st.dirty_sync_count < 2 || !st.has_ram) return v;
    v.known = true;
    const double b = link_rate, d = v.dirty_rate, r = static_cast<double>(st.ram_remaining);
    const double q = d / b;

    // The plan: bring the dirty rate to half the link; raise, never lower.
    if (q > 0.5) {
        ThrottlePlan next;
        next.initial = std::max(plan_.initial, clamp_percent(100.0 * (1.0 - 0.5 / q), 20));
        const unsigned from = std::max(next.initial, v.throttle_percent);
        next.increment = std::max(plan_.increment, clamp_percent((99.0 - from) / 2.0, 10));
        plan_ = next;
    }

    const double target = static_cast<double>(qemu_limit_ms) / 1000.0 * b;
    if (r <= target) {  // QEMU switches over at its next check
        v.converging = true;
        v.forecast_s = 0;
        return v;
    }
    if (q >= kMaxDirtyRatio) return v;
    if (q <= 0) {
        v.converging = true;
        v.forecast_s = r / b;
        return v;
    }
    const double n = std::max(1.0, std::ceil(std::log(target / r) / std::log(q)));
    if (n > kPatientRounds) return v;
    v.converging = true;
    v.forecast_s = r / b * (1.0 - std::pow(q, n)) / (1.0 - q);
    return v;
}

}  // namespace rmig::qemu
