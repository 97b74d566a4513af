// The time series of a channel-mode migration, as `rmig migrate` saw it: one
// sample per progress poll (QEMU's query-migrate and the relay's byte count),
// kept in the source report for `rmig report --plot`.
//
// Bounded: when it holds max_samples, every other sample is dropped and from
// then on only every stride-th poll is kept (the stride doubles each time), so
// an hour at 100 ms polls still fits in max_samples. The latest poll is
// always the last sample, kept or not, so the final state is never lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qemu-plugin/qemu_info.hpp"

namespace rmig::qemu {

struct TimelineSample {
    double t_s = 0;                   // seconds since `rmig migrate` started (its steady clock)
    std::string status;               // QEMU's migration status ("active", "device", "completed", ...)
    uint64_t ram_transferred = 0;     // bytes, QEMU's count, all channels
    uint64_t ram_remaining = 0;
    uint64_t ram_total = 0;
    double dirty_rate = 0;            // bytes/s: QEMU's dirty pages/s times its page size
    double throughput = 0;            // bytes/s: QEMU's own figure (its "mbps")
    uint64_t dirty_sync_count = 0;    // QEMU's rounds: dirty-bitmap syncs so far
    uint64_t relay_bytes = 0;         // what rmig sent over the link so far, all channels
    nlohmann::json to_json() const;
};

// A sample from one query-migrate and the relay's count at `t_s`.
TimelineSample timeline_sample(double t_s, const MigrationStats& stats, uint64_t relay_bytes);
// The inverse of TimelineSample::to_json; throws nlohmann::json errors on a
// field of the wrong type (missing fields stay 0).
TimelineSample timeline_sample_from_json(const nlohmann::json& j);

class Timeline {
public:
    // ~450 bytes of JSON per sample: 1000 samples stay under half a megabyte
    // for any length of run, and still give a 100 s run every 100 ms poll.
    static constexpr size_t kDefaultMaxSamples = 1000;

    explicit Timeline(size_t max_samples = kDefaultMaxSamples);

    void add(TimelineSample s);
    // The source guest's STOP (switchover begins), on the samples' clock.
    void set_switchover_stop(double t_s) { switchover_stop_s_ = t_s; }

    const std::vector<TimelineSample>& samples() const { return samples_; }
    size_t max_samples() const { return max_; }
    size_t stride() const { return stride_; }  // polls per kept sample
    uint64_t polls() const { return polls_; }
    std::optional<double> switchover_stop_s() const { return switchover_stop_s_; }

    nlohmann::json to_json() const;

private:
    void halve();

    size_t max_;
    size_t stride_ = 1;
    uint64_t polls_ = 0;
    bool tail_is_extra_ = false;  // the last sample is the latest poll, off the stride
    std::vector<TimelineSample> samples_;
    std::optional<double> switchover_stop_s_;
};

}  // namespace rmig::qemu
