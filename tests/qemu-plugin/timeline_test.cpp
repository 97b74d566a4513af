// The migration's time series: one sample per poll, bounded by halving, the
// latest poll always last, and its JSON as `rmig report` reads it.
#include <gtest/gtest.h>

#include "qemu-plugin/timeline.hpp"

using namespace rmig::qemu;

namespace {

TimelineSample at(uint64_t poll) {
    TimelineSample s;
    s.t_s = double(poll) / 10;
    s.dirty_sync_count = poll;  // names the poll, to check which ones were kept
    return s;
}

}  // namespace

TEST(Timeline, KeepsEveryPollUntilFull) {
    Timeline t(8);
    for (uint64_t i = 0; i < 8; ++i) t.add(at(i));
    ASSERT_EQ(t.samples().size(), 8u);
    EXPECT_EQ(t.stride(), 1u);
    for (uint64_t i = 0; i < 8; ++i) EXPECT_EQ(t.samples()[i].dirty_sync_count, i);
}

TEST(Timeline, WhenFullKeepsEveryOtherAndThenEveryStrideThPoll) {
    Timeline t(8);
    for (uint64_t i = 0; i < 9; ++i) t.add(at(i));
    // Full at 8: polls 0 2 4 6 kept, then 8 (on the new grid).
    EXPECT_EQ(t.stride(), 2u);
    std::vector<uint64_t> kept;
    for (auto& s : t.samples()) kept.push_back(s.dirty_sync_count);
    EXPECT_EQ(kept, (std::vector<uint64_t>{0, 2, 4, 6, 8}));
    t.add(at(9));  // off the grid: kept as the latest poll only
    EXPECT_EQ(t.samples().back().dirty_sync_count, 9u);
    t.add(at(10));  // replaces it
    kept.clear();
    for (auto& s : t.samples()) kept.push_back(s.dirty_sync_count);
    EXPECT_EQ(kept, (std::vector<uint64_t>{0, 2, 4, 6, 8, 10}));
}

// An hour of 100 ms polls stays within the bound, evenly spaced from the
// first poll, and ends with the latest poll.
TEST(Timeline, AnHourOfPollsStaysBounded) {
    Timeline t;
    const uint64_t polls = 36000;
    for (uint64_t i = 0; i < polls; ++i) {
        t.add(at(i));
        ASSERT_LE(t.samples().size(), Timeline::kDefaultMaxSamples) << "after poll " << i;
    }
    EXPECT_EQ(t.polls(), polls);
    const auto& s = t.samples();
    EXPECT_GE(s.size(), Timeline::kDefaultMaxSamples / 2);
    EXPECT_EQ(s.front().dirty_sync_count, 0u);
    EXPECT_EQ(s.back().dirty_sync_count, polls - 1);
    for (size_t i = 0; i + 1 < s.size(); ++i)
        EXPECT_EQ(s[i].dirty_sync_count, i * t.stride()) << "sample " << i << " is off the grid";
    EXPECT_LT(t.to_json().dump().size(), 300u * 1024) << "an hour's timeline is not small";
}

TEST(Timeline, SampleConvertsQemusUnits) {
    MigrationStats st;
    st.status = "active";
    st.ram_transferred = 100;
    st.ram_remaining = 200;
    st.ram_total = 300;
    st.dirty_pages_rate = 1000;  // pages/s
    st.page_size = 4096;
    st.mbps = 800;  // megabits/s
    st.dirty_sync_count = 3;
    TimelineSample s = timeline_sample(1.5, st, 12345);
    EXPECT_EQ(s.dirty_rate, 4096000.0);
    EXPECT_EQ(s.throughput, 100e6);
    EXPECT_EQ(s.relay_bytes, 12345u);
    st.page_size = 0;  // not reported: 4 KiB pages
    EXPECT_EQ(timeline_sample(0, st, 0).dirty_rate, 4096000.0);
}

TEST(Timeline, JsonRoundTripsAndPlacesTheSwitchover) {
    Timeline t(4);
    MigrationStats st;
    st.status = "active";
    st.ram_total = 1 << 20;
    st.ram_remaining = 1 << 19;
    st.dirty_pages_rate = 10;
    st.page_size = 4096;
    st.mbps = 8;
    st.dirty_sync_count = 2;
    t.add(timeline_sample(0.25, st, 777));
    t.set_switchover_stop(1.75);
    auto j = nlohmann::json::parse(t.to_json().dump());
    EXPECT_EQ(j["switchover_stop_s"].get<double>(), 1.75);
    EXPECT_EQ(j["poll_stride"].get<size_t>(), 1u);
    EXPECT_EQ(j["max_samples"].get<size_t>(), 4u);
    ASSERT_EQ(j["samples"].size(), 1u);
    const auto& js = j["samples"][0];
    EXPECT_EQ(js["status"], "active");
    EXPECT_EQ(js["ram_remaining_bytes"].get<uint64_t>(), 1u << 19);
    EXPECT_EQ(js["dirty_rate_bytes_per_s"].get<double>(), 40960.0);
    EXPECT_EQ(js["throughput_bytes_per_s"].get<double>(), 1e6);
    TimelineSample back = timeline_sample_from_json(js);
    EXPECT_EQ(back.t_s, 0.25);
    EXPECT_EQ(back.dirty_sync_count, 2u);
    EXPECT_EQ(back.relay_bytes, 777u);
    EXPECT_EQ(back.ram_total, 1u << 20);
    EXPECT_TRUE(Timeline().to_json()["switchover_stop_s"].is_null());
}
