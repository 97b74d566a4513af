#include "engine/convergence/convergence_policy.hpp"

#include <algorithm>
#include <cmath>

#include "common/error.hpp"
#include "common/units.hpp"

namespace rmig::engine {

const char* to_string(Action a) noexcept {
    switch (a) {
        case Action::next_round: return "next_round";
        case Action::switchover: return "switchover";
        case Action::throttle: return "throttle";
        case Action::give_up: return "give_up";
        case Action::postcopy: return "postcopy";
    }
    return "unknown";
}

namespace {

void validate(const ConvergenceConfig& c) {
    auto bad = [](const std::string& what) { throw Error(cat("convergence config: ", what)); };
    if (!(c.downtime_budget_ms > 0) || !std::isfinite(c.downtime_budget_ms))
        bad(cat("downtime_budget_ms ", c.downtime_budget_ms, " must be positive"));
    if (c.max_rounds == 0) bad("max_rounds must be at least 1");
    if (!(c.max_total_seconds > 0)) bad(cat("max_total_seconds ", c.max_total_seconds, " must be positive"));
    if (c.throttle_max_percent > 99) bad(cat("throttle_max_percent ", c.throttle_max_percent, " above 99"));
    if (c.throttle_initial_percent == 0 || c.throttle_initial_percent > c.throttle_max_percent)
        bad(cat("throttle_initial_percent ", c.throttle_initial_percent, " must be in 1..throttle_max_percent (",
                c.throttle_max_percent, ")"));
    if (c.throttle_step_percent == 0) bad("throttle_step_percent must be at least 1");
    if (!(c.switchover_reserve >= 0 && c.switchover_reserve < 1))
        bad(cat("switchover_reserve ", c.switchover_reserve, " must be in [0, 1)"));
    if (!(c.max_dirty_ratio > 0)) bad(cat("max_dirty_ratio ", c.max_dirty_ratio, " must be positive"));
    if (!(c.min_progress >= 0 && c.min_progress < 1)) bad(cat("min_progress ", c.min_progress, " must be in [0, 1)"));
    if (c.page_size == 0) bad("page_size must be positive");
    // ewma_alpha and min_samples are checked by RateEstimator.
}

// The pages written in the round that dirtied round.pages_dirtied distinct
// ones, were the writes spread over all of memory (convergence_policy.hpp).
double written_pages(const RoundStats& round) {
    const auto d = static_cast<double>(round.pages_dirtied);
    if (round.total_pages == 0 || round.pages_dirtied == 0) return d;
    const double share = std::min(d / static_cast<double>(round.total_pages), 1.0 - 1e-6);
    return std::max(d, -std::log1p(-share) * static_cast<double>(round.total_pages));
}

}  // namespace

ConvergencePolicy::ConvergencePolicy(ConvergenceConfig config, ThrottleCallback throttle)
    : config_(config),
      throttle_cb_(std::move(throttle)),
      bandwidth_(config.ewma_alpha, config.min_samples),
      dirty_(config.ewma_alpha, config.min_samples) {
    validate(config_);
}

Decision ConvergencePolicy::on_round(const RoundStats& round) {
    if (finished_) throw Error(cat("convergence policy: round ", rounds_ + 1, " reported after the final decision"));
    if (!std::isfinite(round.seconds) || round.seconds < 0)
        throw Error(cat("convergence policy: round ", rounds_ + 1, " has invalid duration ", round.seconds, " s"));
    Decision d = decide(round);
    d.throttle_percent = throttle_;
    finished_ = d.action == Action::switchover || d.action == Action::give_up;
    return d;
}

Decision ConvergencePolicy::decide(const RoundStats& round) {
    ++rounds_;
    elapsed_ += round.seconds;
    if (round.seconds > 0) {  // a zero-length round carries no rate information
        bandwidth_.add(static_cast<double>(round.bytes_sent), round.seconds);
        round_time_.add(static_cast<double>(round.bytes_sent), round.seconds);
        dirty_.add(written_pages(round) * static_cast<double>(config_.page_size), round.seconds);
    }
    const auto remaining = static_cast<double>(round.remaining_bytes);

    // Progress bookkeeping for stall detection.
    if (remaining < best_remaining_ * (1.0 - config_.min_progress)) {
        best_remaining_ = remaining;
        stalled_for_ = 0;
    } else {
        best_remaining_ = std::min(best_remaining_, remaining);
        ++stalled_for_;
    }

    Decision d;
    if (round.remaining_bytes == 0) {
        d.action = Action::switchover;
        d.predicted_downtime_ms = 0;
        d.converging = true;
        d.forecast_seconds = 0;
        d.reason = cat("nothing left to send after round ", rounds_);
        return d;
    }
    const Link l = link();
    if (l.known()) d.predicted_downtime_ms = l.seconds_for(remaining) * 1000.0;
    least_predicted_ms_ = std::min(least_predicted_ms_, d.predicted_downtime_ms);

    if (d.predicted_downtime_ms <= pages_budget_ms()) {
        d.action = Action::switchover;
        d.converging = true;
        d.forecast_seconds = 0;
        d.reason = cat("predicted downtime fits the budget after round ", rounds_, ": ",
                       state_summary(remaining, d.predicted_downtime_ms));
        return d;
    }
    if (rounds_ >= config_.max_rounds)
        return give_up(cat("did not converge within ", config_.max_rounds, " rounds"), remaining,
                       d.predicted_downtime_ms);
    if (elapsed_ >= config_.max_total_seconds)
        return give_up(cat("did not converge within ", format_millis(config_.max_total_seconds * 1000.0), " (",
                           rounds_, " rounds)"),
                       remaining, d.predicted_downtime_ms);

    Forecast f = forecast(remaining);
    d.converging = f.not_converging.empty();
    d.forecast_seconds = f.seconds;
    if (d.converging) {
        d.action = Action::next_round;
        d.reason = cat("round ", rounds_, ": ", state_summary(remaining, d.predicted_downtime_ms));
        return d;
    }
    if (throttle_cb_ && throttle_ < config_.throttle_max_percent) {
        const unsigned planned = planned_throttle(remaining);
        throttle_ = next_throttle(planned);
        throttle_cb_(throttle_);
        // The guest now dirties more slowly: old dirty samples would make the
        // next round look worse than it is and raise the throttle for nothing.
        dirty_.reset();
        stalled_for_ = 0;
        best_remaining_ = remaining;
        d.action = Action::throttle;
        d.reason = cat(f.not_converging, "; throttling the guest to ", throttle_, "%",
                       planned == throttle_ ? " (planned to converge)" : "");
        return d;
    }
    if (config_.stall_rounds > 0 && stalled_for_ >= config_.stall_rounds)
        return give_up(cat("no progress for ", stalled_for_, " rounds ",
                           throttle_cb_ ? cat("at the maximum throttle of ", throttle_, "%")
                                        : std::string("and no throttle")),
                       remaining, d.predicted_downtime_ms);
    // Not converging but nothing to do about it yet: the hard limits end it if it persists.
    d.action = Action::next_round;
    d.reason = cat("round ", rounds_, ": ", f.not_converging);
    return d;
}

Decision ConvergencePolicy::give_up(std::string why, double remaining, double predicted_ms) const {
    Decision d;
    d.action = Action::give_up;
    d.predicted_downtime_ms = predicted_ms;
    d.reason = cat(why, ": ", state_summary(remaining, predicted_ms));
    if (std::isfinite(least_predicted_ms_))
        d.reason += cat("; a downtime budget of ", format_millis(std::ceil(least_predicted_ms_)),
                        " would have switched over (the least predicted downtime of this migration)");
    return d;
}

// The next throttle (only called below the maximum): the plan, but at least
// one step up, and half the way to the maximum when R stalled anyway.
unsigned ConvergencePolicy::next_throttle(unsigned planned) const {
    const unsigned max = config_.throttle_max_percent;
    unsigned least = throttle_ == 0 ? config_.throttle_initial_percent : throttle_ + config_.throttle_step_percent;
    if (throttle_ > 0 && config_.stall_rounds > 0 && stalled_for_ >= config_.stall_rounds)
        least = std::max(least, throttle_ + (max - throttle_ + 1) / 2);
    return std::min(max, std::max(least, planned));
}

ConvergencePolicy::Link ConvergencePolicy::link() const {
    if (!bandwidth_.ready() || bandwidth_.rate() <= 0) return {};  // zero: rounds that sent nothing
    if (round_time_.fitted()) return {round_time_.bandwidth(), round_time_.fixed_seconds()};
    return {bandwidth_.rate(), 0};
}

double ConvergencePolicy::pages_budget_ms() const {
    return config_.downtime_budget_ms * (1.0 - config_.switchover_reserve);
}

double ConvergencePolicy::target_bytes(const Link& l) const {
    return (pages_budget_ms() / 1000.0 - l.fixed) * l.bandwidth;
}

unsigned ConvergencePolicy::planned_throttle(double remaining) const {
    const Link l = link();
    if (!l.known() || !dirty_.ready() || dirty_.rate() <= 0 || remaining <= 0) return 0;
    const double target = target_bytes(l);
    if (target <= 0) return 0;
    const double unthrottled = dirty_.rate() / (1.0 - throttle_ / 100.0);
    const double rounds_left = static_cast<double>(config_.max_rounds - rounds_);
    const double k = std::clamp(rounds_left - 1.0, 1.0, 4.0);
    const double q = std::min(0.5, std::pow(std::min(1.0, target / remaining), 1.0 / k));
    // The rate at which a round's fixed cost alone lets the guest dirty half the target.
    const double settles = target / 2 / (l.fixed + target / 2 / l.bandwidth);
    const double p = 1.0 - std::min(q * l.bandwidth, settles) / unthrottled;
    if (p <= 0) return 0;
    return static_cast<unsigned>(std::min(99.0, std::ceil(p * 100.0)));
}

ConvergencePolicy::Forecast ConvergencePolicy::forecast(double remaining) const {
    Forecast f;
    if (config_.stall_rounds > 0 && stalled_for_ >= config_.stall_rounds) {
        f.not_converging = cat("remaining ", format_bytes(remaining), " has not shrunk for ", stalled_for_, " rounds");
        return f;
    }
    const Link l = link();
    if (!l.known() || !dirty_.ready()) return f;  // converging, as far as known
    const double b = l.bandwidth, a = l.fixed, w = dirty_.rate();
    const double q = w / b;
    if (q >= config_.max_dirty_ratio) {
        f.not_converging = cat("dirty rate ", format_rate(w), " is ", std::lround(q * 100), "% of bandwidth ",
                               format_rate(b));
        return f;
    }
    // Rounds shrink towards the size at which the guest redirties, during a
    // round, what the round sends: R* = w * a / (1 - q), zero without a fixed cost.
    const double target = target_bytes(l);
    const double settles = w * a / (1.0 - q);
    if (settles >= target) {
        f.not_converging = cat("rounds settle at ", format_bytes(settles), " (each costs ", format_millis(a * 1000.0),
                               " besides its bytes, while the guest dirties ", format_rate(w), "), above the ",
                               format_bytes(std::max(0.0, target)), " that fit the budget");
        return f;
    }
    double n = 1;
    if (q > 0) n = std::max(1.0, std::ceil(std::log((target - settles) / (remaining - settles)) / std::log(q)));
    const double rounds_left = config_.max_rounds - rounds_;
    if (n > rounds_left) {
        f.not_converging = cat("forecast needs ", n, " more rounds at a dirty rate of ", std::lround(q * 100),
                               "% of bandwidth, only ", rounds_left, " left");
        return f;
    }
    if (throttle_cb_ && n > config_.patient_rounds) {
        f.not_converging = cat("forecast needs ", n, " more rounds at a dirty rate of ", std::lround(q * 100),
                               "% of bandwidth, more than the ", config_.patient_rounds, " worth waiting for");
        return f;
    }
    // Round i sends R_i = settles + q^i (R - settles); each takes a + R_i / b.
    const double geometric = q > 0 ? (1.0 - std::pow(q, n)) / (1.0 - q) : 1.0;
    const double seconds = n * a + (n * settles + (remaining - settles) * geometric) / b;
    if (elapsed_ + seconds > config_.max_total_seconds) {
        f.not_converging = cat("forecast needs ", format_millis(seconds * 1000.0), " more, beyond the time limit of ",
                               format_millis(config_.max_total_seconds * 1000.0));
        return f;
    }
    f.seconds = seconds;
    return f;
}

std::string ConvergencePolicy::state_summary(double remaining, double predicted_ms) const {
    const Link l = link();
    return cat(format_bytes(remaining), " remaining, predicted downtime ",
               std::isfinite(predicted_ms) ? format_millis(predicted_ms) : std::string("unknown"), " vs budget ",
               format_millis(config_.downtime_budget_ms),
               config_.switchover_reserve > 0 ? cat(" (", format_millis(pages_budget_ms()), " for pages)") : std::string(),
               ", bandwidth ", format_rate(l.known() ? l.bandwidth : 0),
               l.fixed > 0 ? cat(" + ", format_millis(l.fixed * 1000.0), " per round") : std::string(),
               ", dirty rate ", dirty_.ready() ? format_rate(dirty_.rate()) : std::string("unknown"), ", throttle ",
               throttle_, "%");
}

}  // namespace rmig::engine
