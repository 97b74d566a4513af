// The blackout figure: QMP event timestamps put on one clock.
#include "qemu-plugin/blackout.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace rmig::qemu;
using nlohmann::json;

TEST(Blackout, ReadsQmpEventTimestamps) {
    json ev = json::parse(R"({"event":"STOP","timestamp":{"seconds":1700000000,"microseconds":123456}})");
    EXPECT_EQ(event_time_us(ev), 1700000000123456);
    // QEMU stamps -1 when it could not read the clock; no timestamp at all is 0 too.
    EXPECT_EQ(event_time_us(json::parse(R"({"event":"STOP","timestamp":{"seconds":-1,"microseconds":-1}})")), 0);
    EXPECT_EQ(event_time_us(json::parse(R"({"event":"STOP"})")), 0);
    EXPECT_EQ(event_time_us(json::parse(R"({"event":"STOP","timestamp":"now"})")), 0);
}

TEST(Blackout, ClockOffsetComesFromTheShortestRoundTrip) {
    // The peer's clock runs 5 s ahead. Sample 2 has the shortest round trip
    // (200 us) and answered in its middle; sample 1 (2 ms) answered late.
    std::vector<ClockSample> samples = {
        {1'000'000, 5'001'900, 1'002'000},
        {2'000'000, 7'000'100, 2'000'200},
        {3'000'000, 0, 3'000'100},  // no clock in the answer: ignored
    };
    ClockOffset o = estimate_offset(samples);
    ASSERT_TRUE(o.known);
    EXPECT_EQ(o.offset_us, 5'000'000);
    EXPECT_DOUBLE_EQ(o.uncertainty_ms, 0.1);
    EXPECT_FALSE(estimate_offset(std::vector<ClockSample>{}).known);
    EXPECT_FALSE(estimate_offset(std::vector<ClockSample>{{10, 0, 20}}).known);
}

TEST(Blackout, SpansBothHostsOnOneClock) {
    ClockOffset o{.known = true, .offset_us = 5'000'000, .uncertainty_ms = 0.1};
    // Source stopped at 10.000 s (its clock); the destination loaded at
    // 15.080 s and resumed at 15.090 s (its clock, 5 s ahead).
    Blackout b = measure_blackout(10'000'000, 15'080'000, 15'090'000, o);
    ASSERT_TRUE(b.ms && b.stop_to_loaded_ms);
    EXPECT_DOUBLE_EQ(*b.ms, 90.0);
    EXPECT_DOUBLE_EQ(*b.stop_to_loaded_ms, 80.0);
    EXPECT_DOUBLE_EQ(b.uncertainty_ms, 0.1);
    json j = b.to_json();
    EXPECT_DOUBLE_EQ(j["ms"].get<double>(), 90.0);

    // Not resumed (--no-resume): only the load is known.
    Blackout paused = measure_blackout(10'000'000, 15'080'000, 0, o);
    EXPECT_FALSE(paused.ms);
    EXPECT_TRUE(paused.to_json()["ms"].is_null());
    ASSERT_TRUE(paused.stop_to_loaded_ms);
    // No STOP seen, or no clock offset: nothing is claimed.
    EXPECT_FALSE(measure_blackout(0, 15'080'000, 15'090'000, o).ms);
    EXPECT_FALSE(measure_blackout(10'000'000, 15'080'000, 15'090'000, ClockOffset{}).ms);
}

TEST(Blackout, SwitchoverEventsKeepTheFirstOfEach) {
    SwitchoverEvents e;
    auto ev = [](const char* text) { return json::parse(text); };
    e.note(ev(R"({"event":"MIGRATION","data":{"status":"active"},"timestamp":{"seconds":1,"microseconds":0}})"));
    e.note(ev(R"({"event":"STOP","timestamp":{"seconds":2,"microseconds":5}})"));
    e.note(ev(R"({"event":"MIGRATION","data":{"status":"completed"},"timestamp":{"seconds":3,"microseconds":0}})"));
    e.note(ev(R"({"event":"RESUME","timestamp":{"seconds":4,"microseconds":0}})"));
    e.note(ev(R"({"event":"STOP","timestamp":{"seconds":9,"microseconds":0}})"));
    EXPECT_EQ(e.stop_us, 2'000'005);
    EXPECT_EQ(e.completed_us, 3'000'000);
    EXPECT_EQ(e.resume_us, 4'000'000);
}
