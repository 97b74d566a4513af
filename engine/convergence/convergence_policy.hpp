// When to stop pre-copying: after every round the policy decides whether to
// switch over (pause the guest and send what is left), run another round,
// slow the guest down (auto-converge) or give up cleanly.
//
// The math
// --------
// Per round i the caller reports bytes_sent_i, seconds_i, pages_dirtied_i (distinct
// pages the guest dirtied during the round: what the next round must resend) and
// R = remaining dirty bytes. Two RateEstimators (EWMA, see rate_estimator.hpp) give
//   B = bandwidth  = EWMA(bytes_sent_i / seconds_i)                  [bytes/s]
//   D = dirty rate = EWMA(pages_dirtied_i * page_size / seconds_i)   [bytes/s]
//
// Switchover. The guest is paused during the last round, so nothing new gets
// dirty and the downtime is the time to send R:
//   predicted_downtime = R / B
// Switch over iff predicted_downtime <= downtime_budget (R = 0 always fits). The
// policy never returns switchover with a larger prediction, and never switches
// over before B has min_samples samples.
//
// Convergence forecast. A round sending R bytes lasts R / B; the guest dirties
// D * R / B meanwhile, so the next round has
//   R' = q * R,  q = D / B.
// q >= 1: R never shrinks. q < 1: R reaches the target T = budget * B after
//   n = ceil( ln(T / R) / ln(q) )  rounds, taking  (R / B) * (1 - q^n) / (1 - q)  seconds.
// (D is a count of distinct pages, so it falls for long rounds whose writes hit
// the same working set; the forecast is therefore optimistic early, and stall
// detection below catches what it misses.)
//
// Not converging when any of:
//   - q >= max_dirty_ratio;
//   - n > rounds left (max_rounds - rounds), or the forecast time overruns max_total_seconds;
//   - stall: R has not dropped below (1 - min_progress) * (smallest R so far) for
//     stall_rounds consecutive rounds.
// Then, if a throttle callback exists and the throttle is below throttle_max_percent,
// the policy steps the throttle (0 -> throttle_initial_percent, then
// +throttle_step_percent, capped at throttle_max_percent), calls the callback with
// the new percent and returns throttle. A throttled guest dirties about
// D * (1 - percent / 100); the dirty-rate estimator restarts after each step
// (older samples describe a faster guest) and the stall count restarts, so the
// throttle rises at most one step per round and only while the evidence holds.
// Without a callback, or at the maximum throttle, a stall gives up.
//
// Hard limits, checked after the switchover test: rounds >= max_rounds or elapsed
// time >= max_total_seconds gives up. Every give_up carries a reason for the user.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

#include "engine/convergence/rate_estimator.hpp"

namespace rmig::engine {

struct ConvergenceConfig {
    double downtime_budget_ms = 300.0;
    unsigned max_rounds = 30;                   // pre-copy rounds before giving up
    double max_total_seconds = 600.0;           // wall time before giving up
    unsigned throttle_initial_percent = 20;     // first auto-converge step
    unsigned throttle_step_percent = 10;        // each further step
    unsigned throttle_max_percent = 99;         // never stop the guest entirely
    double max_dirty_ratio = 0.9;               // D / B at or above this: not converging
    unsigned stall_rounds = 3;                  // rounds without progress = stall (0: off)
    double min_progress = 0.05;                 // R must fall by this fraction to count as progress
    double ewma_alpha = 0.5;                    // weight of the newest sample
    unsigned min_samples = 1;                   // samples before B and D are trusted
    size_t page_size = 4096;
};

// Per-round input, as measured by the caller.
struct RoundStats {
    uint64_t bytes_sent = 0;       // payload put on the link this round
    double seconds = 0;            // wall time of the round (0: no rate sample taken)
    uint64_t pages_dirtied = 0;    // distinct pages dirtied during the round
    uint64_t remaining_bytes = 0;  // dirty bytes still to send after the round
};

enum class Action {
    next_round,  // run another pre-copy round
    switchover,  // pause the guest and send the remaining bytes
    throttle,    // the callback was called with throttle_percent; run another round
    give_up,     // abort the migration (reason says why); the guest keeps running on the source
};

const char* to_string(Action a) noexcept;

struct Decision {
    Action action = Action::next_round;
    // R / B in ms; +infinity while B is not yet trusted.
    double predicted_downtime_ms = std::numeric_limits<double>::infinity();
    unsigned throttle_percent = 0;  // throttle in force after this decision
    std::string reason;             // always set: for logs, and the user-facing message of give_up
};

// Called with the new throttle percent (1..99) when the policy steps the throttle.
using ThrottleCallback = std::function<void(unsigned percent)>;

class ConvergencePolicy {
public:
    // Throws Error on an inconsistent config. Without `throttle`, never throttles.
    explicit ConvergencePolicy(ConvergenceConfig config, ThrottleCallback throttle = {});

    // Feed one finished round; returns what to do next. After switchover or
    // give_up the policy is finished and further calls throw Error. Throws Error
    // on a negative or non-finite round time.
    Decision on_round(const RoundStats& round);

    const ConvergenceConfig& config() const noexcept { return config_; }
    const RateEstimator& bandwidth() const noexcept { return bandwidth_; }
    const RateEstimator& dirty_rate() const noexcept { return dirty_; }
    unsigned rounds() const noexcept { return rounds_; }
    double elapsed_seconds() const noexcept { return elapsed_; }
    unsigned throttle_percent() const noexcept { return throttle_; }
    bool finished() const noexcept { return finished_; }

private:
    Decision decide(const RoundStats& round);
    std::string not_converging_reason(double remaining) const;  // empty: converging
    std::string state_summary(double remaining, double predicted_ms) const;

    ConvergenceConfig config_;
    ThrottleCallback throttle_cb_;
    RateEstimator bandwidth_;
    RateEstimator dirty_;
    unsigned rounds_ = 0;
    double elapsed_ = 0;
    unsigned throttle_ = 0;
    double best_remaining_ = std::numeric_limits<double>::infinity();
    unsigned stalled_for_ = 0;
    bool finished_ = false;
};

}  // namespace rmig::engine
