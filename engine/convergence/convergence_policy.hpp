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
//   D = dirty rate = EWMA(w_i * page_size)                           [bytes/s]
// where w_i is the guest's write rate in pages/s that would dirty pages_dirtied_i
// distinct pages of total_pages in seconds_i if it wrote anywhere at random:
//   w_i = -(total_pages / seconds_i) * ln(1 - pages_dirtied_i / total_pages)
// A long round counts a page written twice once; short rounds near the end do
// not, so the plain pages_dirtied_i / seconds_i would understate what decides
// convergence. (Without total_pages, the plain rate.)
//
// Switchover. The guest is paused during the last round, so nothing new gets
// dirty and the downtime is the time to send R:
//   predicted_downtime = R / B
// Switch over iff predicted_downtime <= (1 - switchover_reserve) * downtime_budget
// (R = 0 always fits): the reserve is for pausing, device state and confirmation. The
// policy never returns switchover with a larger prediction, and never switches
// over before B has min_samples samples.
//
// Convergence forecast. A round sending R bytes lasts R / B; the guest dirties
// D * R / B meanwhile, so the next round has
//   R' = q * R,  q = D / B.
// q >= 1: R never shrinks. q < 1: R reaches the target T = budget * B after
//   n = ceil( ln(T / R) / ln(q) )  rounds, taking  (R / B) * (1 - q^n) / (1 - q)  seconds.
// (A hot working set smaller than memory still reads low in long rounds; the
// plan's margin and stall detection below cover it.)
//
// Not converging when any of:
//   - q >= max_dirty_ratio;
//   - n > rounds left (max_rounds - rounds), or the forecast time overruns max_total_seconds;
//   - with a throttle callback, n > patient_rounds: pre-copy would crawl (each round
//     resends what the last one dirtied), so the guest is slowed to finish sooner;
//   - stall: R has not dropped below (1 - min_progress) * (smallest R so far) for
//     stall_rounds consecutive rounds.
//
// Throttle (auto-converge), planned rather than stepped. When not converging and
// a throttle callback exists, the policy picks the throttle p that should bring
// R to the target T within k = min(4, rounds left - 1) rounds (at least 1):
//   q* = min(1/2, (T / R)^(1/k)),   W0 = D / (1 - p_now)   (the unthrottled rate),
//   p  = 1 - q* * B / W0
// and applies it at once. q* is at most 1/2 because D measured in long rounds
// understates the rate of the short rounds near the end (a hot working set
// dirties fewer distinct pages per second the longer the round; per-round costs
// that do not shrink with the round lower B); aiming at half the bandwidth
// leaves room for both. The throttle never goes down, rises by at least
// throttle_step_percent (the first one is at least throttle_initial_percent), and
// when R stalls anyway (the plan's evidence was wrong, or the dirtying does not
// come from vCPUs) it halves the distance to throttle_max_percent. The
// dirty-rate estimator restarts after each change (older samples describe a
// faster guest), and so does the stall count.
// Without a callback, or at the maximum throttle, a stall gives up; every
// give_up names the smallest downtime budget that would have switched over
// during this migration (the least predicted downtime seen).
//
// Forecast: each decision says whether the migration is converging at the
// throttle now in force and, if so, the forecast time to switchover.
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
#include "engine/convergence/round_time_model.hpp"

namespace rmig::engine {

struct ConvergenceConfig {
    double downtime_budget_ms = 300.0;
    // Share of the budget kept for what the last round's pages do not cover:
    // pausing the guest, its device state, the destination's confirmation
    // (7 ms of 50 measured with rmig-synth on loopback).
    double switchover_reserve = 0.1;
    unsigned max_rounds = 30;                   // pre-copy rounds before giving up
    double max_total_seconds = 600.0;           // wall time before giving up
    unsigned throttle_initial_percent = 20;     // the least first throttle
    unsigned throttle_step_percent = 10;        // the least raise after it
    unsigned throttle_max_percent = 99;         // never stop the guest entirely
    double max_dirty_ratio = 0.9;               // D / B at or above this: not converging
    unsigned stall_rounds = 3;                  // rounds without progress = stall (0: off)
    // A forecast needing more rounds than this throttles (with a callback),
    // like QEMU's auto-converge does once a period dirties half what it sent.
    unsigned patient_rounds = 5;
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
    uint64_t total_pages = 0;      // pages the guest has (0: unknown, no correction below)
};

enum class Action {
    next_round,  // run another pre-copy round
    switchover,  // pause the guest and send the remaining bytes
    throttle,    // the callback was called with throttle_percent; run another round
    give_up,     // abort the migration (reason says why); the guest keeps running on the source
    // Never the policy's: the engine's switch to post-copy (its reason says
    // why), reported in place of the decision it overrode.
    postcopy,
};

const char* to_string(Action a) noexcept;

struct Decision {
    Action action = Action::next_round;
    // R / B in ms; +infinity while B is not yet trusted.
    double predicted_downtime_ms = std::numeric_limits<double>::infinity();
    unsigned throttle_percent = 0;  // throttle in force after this decision
    // The forecast at that throttle: converging within the limits, and if so
    // the time until switchover (0 at switchover; +infinity when unknown).
    bool converging = false;
    double forecast_seconds = std::numeric_limits<double>::infinity();
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
    // The link as rounds see it: seconds = fixed + bytes / bandwidth
    // (round_time_model.hpp; fixed = 0 until the rounds tell it apart).
    struct Link {
        double bandwidth = 0, fixed = 0;
        bool known() const noexcept { return bandwidth > 0; }
        double seconds_for(double bytes) const noexcept { return fixed + bytes / bandwidth; }
    };
    Link link() const;
    double pages_budget_ms() const;  // the budget less the switchover reserve
    double target_bytes(const Link& l) const;  // the most one paused round may send within the budget
    struct Forecast {
        std::string not_converging;  // empty: converging
        double seconds = std::numeric_limits<double>::infinity();
    };
    Decision decide(const RoundStats& round);
    Forecast forecast(double remaining) const;
    unsigned next_throttle(unsigned planned) const;  // the plan, bounded by the step rules
    unsigned planned_throttle(double remaining) const;  // 0: no evidence to plan with
    Decision give_up(std::string why, double remaining, double predicted_ms) const;
    std::string state_summary(double remaining, double predicted_ms) const;

    ConvergenceConfig config_;
    ThrottleCallback throttle_cb_;
    RateEstimator bandwidth_;
    RateEstimator dirty_;
    RoundTimeModel round_time_;
    unsigned rounds_ = 0;
    double elapsed_ = 0;
    unsigned throttle_ = 0;
    double best_remaining_ = std::numeric_limits<double>::infinity();
    double least_predicted_ms_ = std::numeric_limits<double>::infinity();
    unsigned stalled_for_ = 0;
    bool finished_ = false;
};

}  // namespace rmig::engine
