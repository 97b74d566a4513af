// rmig's view of QEMU's pre-copy and its plan for QEMU's auto-converge
// (qemu-plugin/convergence_steering): converging or not, the forecast time to
// switchover, and a throttle planned from the measured rates, only ever raised.
#include "qemu-plugin/convergence_steering.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace rmig::qemu {
namespace {

constexpr double kGB = 1e9;

// QEMU's stats in the middle of pre-copy: `dirty` bytes/s, `remaining` bytes.
MigrationStats active(double dirty, double remaining, unsigned throttle = 0, uint64_t syncs = 5) {
    MigrationStats s;
    s.status = "active";
    s.has_ram = true;
    s.page_size = 4096;
    s.dirty_pages_rate = static_cast<uint64_t>(dirty / 4096);
    s.ram_remaining = static_cast<uint64_t>(remaining);
    s.dirty_sync_count = syncs;
    s.cpu_throttle_percentage = throttle;
    return s;
}

TEST(ConvergenceSteering, UnknownUntilMeasured) {
    ConvergenceSteering c;
    EXPECT_FALSE(c.update(active(0.1 * kGB, 1 * kGB), 0, 300).known) << "no link rate yet";
    EXPECT_FALSE(c.update(active(0.1 * kGB, 1 * kGB, 0, 1), 1 * kGB, 300).known) << "QEMU has no dirty rate yet";
    auto v = c.update(active(0.1 * kGB, 1 * kGB), 1 * kGB, 300);
    EXPECT_TRUE(v.known);
    EXPECT_DOUBLE_EQ(v.link_rate, 1 * kGB);
}

TEST(ConvergenceSteering, ForecastsTheTimeToSwitchover) {
    ConvergenceSteering c;
    // q = 0.25; 1 GB to 300 MB (300 ms at 1 GB/s): n = ceil(ln 0.3 / ln 0.25) = 1 round of 1 s.
    auto v = c.update(active(0.25 * kGB, 1 * kGB), 1 * kGB, 300);
    ASSERT_TRUE(v.converging);
    EXPECT_NEAR(v.forecast_s, 1.0, 1e-9);
    // 2 GB: n = ceil(ln 0.15 / ln 0.25) = 2 rounds: 2 s + 0.5 s.
    v = c.update(active(0.25 * kGB, 2 * kGB), 1 * kGB, 300);
    ASSERT_TRUE(v.converging);
    EXPECT_NEAR(v.forecast_s, 2.5, 1e-4);  // the dirty rate is in whole pages
    // What is left already fits QEMU's limit: switchover at its next check.
    v = c.update(active(0.25 * kGB, 0.2 * kGB), 1 * kGB, 300);
    EXPECT_TRUE(v.converging);
    EXPECT_EQ(v.forecast_s, 0);
    EXPECT_EQ(c.plan(), ThrottlePlan{}) << "a guest at a quarter of the link is never throttled";
}

TEST(ConvergenceSteering, NotConvergingNearTheLinkOrTooSlowly) {
    ConvergenceSteering c;
    auto v = c.update(active(0.95 * kGB, 1 * kGB), 1 * kGB, 300);
    EXPECT_TRUE(v.known);
    EXPECT_FALSE(v.converging);
    EXPECT_EQ(v.forecast_s, -1);
    // q = 0.8 converges, but from 8 GB to 300 MB takes 15 rounds: more than kPatientRounds.
    v = c.update(active(0.8 * kGB, 8 * kGB), 1 * kGB, 300);
    EXPECT_FALSE(v.converging);
}

TEST(ConvergenceSteering, PlansTheThrottleToHalveTheDirtyRateAndOnlyRaisesIt) {
    ConvergenceSteering c;
    // Dirty at the link's rate: the first throttle brings it to half, 50%;
    // then half of the 49 points left to 99 per step.
    c.update(active(1 * kGB, 1 * kGB), 1 * kGB, 300);
    EXPECT_EQ(c.plan(), (ThrottlePlan{50, 25}));
    // Twice the link: 75%.
    c.update(active(2 * kGB, 1 * kGB), 1 * kGB, 300);
    EXPECT_EQ(c.plan(), (ThrottlePlan{75, 25}));
    // The guest slowed: the plan does not come down.
    c.update(active(0.3 * kGB, 1 * kGB, 75), 1 * kGB, 300);
    EXPECT_EQ(c.plan(), (ThrottlePlan{75, 25}));
    // QEMU throttles at 90% and the guest still outruns the link: the step
    // stays at least QEMU's 10.
    c.update(active(1.5 * kGB, 1 * kGB, 90), 1 * kGB, 300);
    EXPECT_EQ(c.plan().initial, 75u);
    EXPECT_GE(c.plan().increment, 10u);
}

TEST(ConvergenceSteering, ReportsQemusThrottle) {
    ConvergenceSteering c;
    EXPECT_EQ(c.update(active(0.5 * kGB, 1 * kGB, 33), 1 * kGB, 300).throttle_percent, 33u);
}

}  // namespace
}  // namespace rmig::qemu
