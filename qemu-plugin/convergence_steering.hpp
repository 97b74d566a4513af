// rmig's view of QEMU's pre-copy, and its steering of QEMU's throttle, so
// that the user gives one number (the blackout budget) and the guest moves.
//
// Each progress poll gives QEMU's dirty rate D (dirty-pages-rate x page size,
// measured over its last sync period), what is left R (ram remaining), the
// rate rmig moves bytes at B (its own measurement of the link, over the last
// 3 s) and the
// downtime-limit QEMU now has (rmig steers it: downtime_budget.hpp). Then,
// as in memory mode (docs/convergence.md), with q = D / B and the last
// round's target T = limit x B:
//   converging  iff q < 0.9 and n = ceil(ln(T / R) / ln q) <= kPatientRounds,
//   forecast    = R / B x (1 - q^n) / (1 - q)   (time to switchover).
// The throttle: QEMU's auto-converge slows the vCPUs once a sync period
// dirties more than half of what it sent, first to cpu-throttle-initial, then
// by cpu-throttle-increment. rmig plans both from its measurements instead of
// QEMU's fixed 20 and 10: the initial throttle that brings D to half of B,
// p = 1 - B / (2 D), and an increment of half the way left to 99%.
#pragma once

#include <cstdint>
#include <optional>

#include "qemu-plugin/qemu_info.hpp"

namespace rmig::qemu {

struct ConvergenceView {
    bool known = false;       // rates measured: the fields below mean something
    bool converging = false;  // forecast to fit the downtime-limit soon at this throttle
    double forecast_s = -1;   // time to switchover when converging, else -1
    unsigned throttle_percent = 0;  // QEMU's vCPU throttle now (cpu-throttle-percentage)
    double dirty_rate = 0;    // bytes/s, QEMU's
    double link_rate = 0;     // bytes/s, rmig's
};

struct ThrottlePlan {
    unsigned initial = 20;    // QEMU's defaults until measured
    unsigned increment = 10;
    bool operator==(const ThrottlePlan&) const = default;
};

// Rounds worth waiting for before the guest is slowed (as in memory mode).
inline constexpr unsigned kPatientRounds = 5;

class ConvergenceSteering {
public:
    // One poll. `link_rate` in bytes/s (0: not measured yet); `qemu_limit_ms`
    // the downtime-limit QEMU has now.
    ConvergenceView update(const MigrationStats& st, double link_rate, uint64_t qemu_limit_ms);

    // What QEMU's auto-converge should use now: planned from the last update
    // with rates, never lower than before (a throttle is only ever raised).
    ThrottlePlan plan() const { return plan_; }

private:
    ThrottlePlan plan_;
};

}  // namespace rmig::qemu
