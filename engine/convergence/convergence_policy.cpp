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
    if (!(c.max_dirty_ratio > 0)) bad(cat("max_dirty_ratio ", c.max_dirty_ratio, " must be positive"));
    if (!(c.min_progress >= 0 && c.min_progress < 1)) bad(cat("min_progress ", c.min_progress, " must be in [0, 1)"));
    if (c.page_size == 0) bad("page_size must be positive");
    // ewma_alpha and min_samples are checked by RateEstimator.
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
        dirty_.add(static_cast<double>(round.pages_dirtied) * static_cast<double>(config_.page_size), round.seconds);
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
        d.reason = cat("nothing left to send after round ", rounds_);
        return d;
    }
    // A zero bandwidth estimate (rounds that sent nothing) cannot predict anything.
    if (bandwidth_.ready() && bandwidth_.rate() > 0) d.predicted_downtime_ms = remaining / bandwidth_.rate() * 1000.0;

    if (d.predicted_downtime_ms <= config_.downtime_budget_ms) {
        d.action = Action::switchover;
        d.reason = cat("predicted downtime fits the budget after round ", rounds_, ": ",
                       state_summary(remaining, d.predicted_downtime_ms));
        return d;
    }
    if (rounds_ >= config_.max_rounds) {
        d.action = Action::give_up;
        d.reason = cat("did not converge within ", config_.max_rounds, " rounds: ",
                       state_summary(remaining, d.predicted_downtime_ms));
        return d;
    }
    if (elapsed_ >= config_.max_total_seconds) {
        d.action = Action::give_up;
        d.reason = cat("did not converge within ", format_millis(config_.max_total_seconds * 1000.0), " (",
                       rounds_, " rounds): ", state_summary(remaining, d.predicted_downtime_ms));
        return d;
    }

    std::string why = not_converging_reason(remaining);
    if (why.empty()) {
        d.action = Action::next_round;
        d.reason = cat("round ", rounds_, ": ", state_summary(remaining, d.predicted_downtime_ms));
        return d;
    }
    if (throttle_cb_ && throttle_ < config_.throttle_max_percent) {
        const unsigned next = throttle_ == 0 ? config_.throttle_initial_percent : throttle_ + config_.throttle_step_percent;
        throttle_ = std::min(next, config_.throttle_max_percent);
        throttle_cb_(throttle_);
        // The guest now dirties more slowly: old dirty samples would make the
        // next round look worse than it is and step the throttle again for nothing.
        dirty_.reset();
        stalled_for_ = 0;
        best_remaining_ = remaining;
        d.action = Action::throttle;
        d.reason = cat(why, "; throttling the guest to ", throttle_, "%");
        return d;
    }
    if (config_.stall_rounds > 0 && stalled_for_ >= config_.stall_rounds) {
        d.action = Action::give_up;
        d.reason = cat("no progress for ", stalled_for_, " rounds ",
                       throttle_cb_ ? cat("at the maximum throttle of ", throttle_, "%") : std::string("and no throttle"),
                       ": ", state_summary(remaining, d.predicted_downtime_ms));
        return d;
    }
    // Not converging but nothing to do about it yet: the hard limits end it if it persists.
    d.action = Action::next_round;
    d.reason = cat("round ", rounds_, ": ", why);
    return d;
}

std::string ConvergencePolicy::not_converging_reason(double remaining) const {
    if (config_.stall_rounds > 0 && stalled_for_ >= config_.stall_rounds)
        return cat("remaining ", format_bytes(remaining), " has not shrunk for ", stalled_for_, " rounds");
    if (!bandwidth_.ready() || !dirty_.ready() || bandwidth_.rate() <= 0) return {};
    const double b = bandwidth_.rate();
    const double q = dirty_.rate() / b;
    if (q >= config_.max_dirty_ratio)
        return cat("dirty rate ", format_rate(dirty_.rate()), " is ", std::lround(q * 100), "% of bandwidth ",
                   format_rate(b));
    if (q <= 0) return {};  // nothing gets dirty: the next round sends R and is done
    const double target = config_.downtime_budget_ms / 1000.0 * b;
    const double n = std::ceil(std::log(target / remaining) / std::log(q));
    const double rounds_left = config_.max_rounds - rounds_;
    if (n > rounds_left)
        return cat("forecast needs ", n, " more rounds at a dirty rate of ", std::lround(q * 100), "% of bandwidth, only ",
                   rounds_left, " left");
    const double seconds = remaining / b * (1.0 - std::pow(q, n)) / (1.0 - q);
    if (elapsed_ + seconds > config_.max_total_seconds)
        return cat("forecast needs ", format_millis(seconds * 1000.0), " more, beyond the time limit of ",
                   format_millis(config_.max_total_seconds * 1000.0));
    return {};
}

std::string ConvergencePolicy::state_summary(double remaining, double predicted_ms) const {
    return cat(format_bytes(remaining), " remaining, predicted downtime ",
               std::isfinite(predicted_ms) ? format_millis(predicted_ms) : std::string("unknown"), " vs budget ",
               format_millis(config_.downtime_budget_ms), ", bandwidth ", format_rate(bandwidth_.rate()),
               ", dirty rate ", dirty_.ready() ? format_rate(dirty_.rate()) : std::string("unknown"), ", throttle ",
               throttle_, "%");
}

}  // namespace rmig::engine
