// A deterministic pre-copy migration over a simulated link, for testing the
// convergence policy without a guest or a network.
//
// Model: a guest of `memory` bytes writes at `dirty_rate` bytes/s into a hot
// working set of `working_set` bytes, uniformly at random, so in t seconds it
// dirties  W * (1 - exp(-D_eff * t / W))  distinct bytes (rounded to pages),
// D_eff = D * (1 - throttle / 100) when throttling works. Round 1 sends all of
// memory; each next round sends what the previous one left dirty, at a link
// bandwidth of B * (1 + jitter * sin(1.7 * round)) (deterministic wobble, so the
// estimator never sees the exact value it is asked to predict), plus a fixed
// `round_overhead` per round (collecting the dirty log, the round's closing
// handshake: costs that do not shrink with the round, so short rounds move
// fewer bytes per second). The final, paused round takes remaining /
// bandwidth of its own round number, plus the overhead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/convergence/convergence_policy.hpp"

namespace rmig::engine::test {

struct SimParams {
    double memory = 4.0 * (1ull << 30);
    double bandwidth = 1.25e9;  // 10 GbE
    double dirty_rate = 100e6;
    double working_set = 512.0 * (1ull << 20);
    double jitter = 0.03;
    double page_size = 4096;
    bool throttle_works = true;  // false: the dirtying does not come from vCPUs (e.g. device DMA)
    double round_overhead = 0;   // seconds per round, whatever its size
};

class SimulatedMigration {
public:
    explicit SimulatedMigration(SimParams p) : p_(p), remaining_(p.memory) {}

    RoundStats run_round() {
        ++round_;
        const double seconds = remaining_ / bandwidth_of(round_) + p_.round_overhead;
        const double d_eff = p_.throttle_works ? p_.dirty_rate * (1.0 - throttle_ / 100.0) : p_.dirty_rate;
        double dirtied = p_.working_set * (1.0 - std::exp(-d_eff * seconds / p_.working_set));
        const double pages = std::ceil(dirtied / p_.page_size);
        RoundStats s;
        s.bytes_sent = static_cast<uint64_t>(remaining_);
        s.seconds = seconds;
        s.pages_dirtied = static_cast<uint64_t>(pages);
        remaining_ = pages * p_.page_size;
        s.remaining_bytes = static_cast<uint64_t>(remaining_);
        s.total_pages = static_cast<uint64_t>(p_.memory / p_.page_size);
        elapsed_ += seconds;
        return s;
    }

    // Downtime of the paused final round if the guest stopped now.
    double final_round_ms() const { return (remaining_ / bandwidth_of(round_ + 1) + p_.round_overhead) * 1000.0; }

    void set_throttle(unsigned percent) { throttle_ = percent; }
    unsigned throttle() const { return throttle_; }
    double elapsed() const { return elapsed_; }

private:
    double bandwidth_of(unsigned round) const { return p_.bandwidth * (1.0 + p_.jitter * std::sin(1.7 * round)); }

    SimParams p_;
    double remaining_;
    unsigned round_ = 0;
    unsigned throttle_ = 0;
    double elapsed_ = 0;
};

}  // namespace rmig::engine::test
