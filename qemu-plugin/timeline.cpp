#include "qemu-plugin/timeline.hpp"

#include <algorithm>

namespace rmig::qemu {

using nlohmann::json;

namespace {

// QEMU reports its dirty rate in pages/s; 7.2 always sends page-size, but an
// older reply without it means the target's 4 KiB pages.
constexpr uint64_t kDefaultPageSize = 4096;

}  // namespace

json TimelineSample::to_json() const {
    return {{"t_s", t_s},
            {"status", status},
            {"ram_transferred_bytes", ram_transferred},
            {"ram_remaining_bytes", ram_remaining},
            {"ram_total_bytes", ram_total},
            {"dirty_rate_bytes_per_s", dirty_rate},
            {"throughput_bytes_per_s", throughput},
            {"dirty_sync_count", dirty_sync_count},
            {"relay_bytes", relay_bytes}};
}

TimelineSample timeline_sample(double t_s, const MigrationStats& stats, uint64_t relay_bytes) {
    TimelineSample s;
    s.t_s = t_s;
    s.status = stats.status;
    s.ram_transferred = stats.ram_transferred;
    s.ram_remaining = stats.ram_remaining;
    s.ram_total = stats.ram_total;
    uint64_t page = stats.page_size ? stats.page_size : kDefaultPageSize;
    s.dirty_rate = double(stats.dirty_pages_rate) * double(page);
    s.throughput = stats.mbps * 1e6 / 8;  // QEMU's mbps are megabits (10^6) per second
    s.dirty_sync_count = stats.dirty_sync_count;
    s.relay_bytes = relay_bytes;
    return s;
}

TimelineSample timeline_sample_from_json(const json& j) {
    TimelineSample s;
    s.t_s = j.value("t_s", 0.0);
    s.status = j.value("status", "");
    s.ram_transferred = j.value("ram_transferred_bytes", uint64_t{0});
    s.ram_remaining = j.value("ram_remaining_bytes", uint64_t{0});
    s.ram_total = j.value("ram_total_bytes", uint64_t{0});
    s.dirty_rate = j.value("dirty_rate_bytes_per_s", 0.0);
    s.throughput = j.value("throughput_bytes_per_s", 0.0);
    s.dirty_sync_count = j.value("dirty_sync_count", uint64_t{0});
    s.relay_bytes = j.value("relay_bytes", uint64_t{0});
    return s;
}

Timeline::Timeline(size_t max_samples) : max_(std::max<size_t>(max_samples, 2)) {}

void Timeline::add(TimelineSample s) {
    uint64_t poll = polls_++;
    if (tail_is_extra_) samples_.pop_back();
    if (samples_.size() >= max_) halve();
    tail_is_extra_ = poll % stride_ != 0;
    samples_.push_back(std::move(s));
}

// The kept samples are polls 0, stride, 2*stride, ...: every other one of
// them is the grid of twice the stride.
void Timeline::halve() {
    size_t kept = 0;
    for (size_t i = 0; i < samples_.size(); i += 2) samples_[kept++] = std::move(samples_[i]);
    samples_.resize(kept);
    stride_ *= 2;
}

json Timeline::to_json() const {
    json samples = json::array();
    for (const auto& s : samples_) samples.push_back(s.to_json());
    return {{"clock", "seconds since rmig migrate started; blackout times count from switchover_stop_s"},
            {"polls", polls_},
            {"poll_stride", stride_},
            {"max_samples", max_},
            {"switchover_stop_s", switchover_stop_s_ ? json(*switchover_stop_s_) : json(nullptr)},
            {"samples", samples}};
}

}  // namespace rmig::qemu
