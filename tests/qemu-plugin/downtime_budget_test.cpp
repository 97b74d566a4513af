// QEMU's share of the user's downtime limit, and the rate it is planned with.
#include "qemu-plugin/downtime_budget.hpp"

#include <gtest/gtest.h>

using namespace rmig::qemu;

TEST(DowntimeBudget, QemuGetsTheLimitLessTheDrainAndTheResume) {
    // 64 MiB in flight at 125 MB/s (1 Gbit/s) is 537 ms of drain: more than a
    // 300 ms limit, so QEMU gets the floor and the plan says so.
    DowntimeBudget wan = plan_downtime(300, 64ull << 20, 125e6, 5);
    EXPECT_NEAR(wan.drain_ms, 536.9, 0.1);
    EXPECT_TRUE(wan.floored);
    EXPECT_EQ(wan.qemu_limit_ms, 30u);

    // 8 MiB at 125 MB/s: 67 ms of drain, 6 ms to resume -> 226 ms for QEMU.
    DowntimeBudget lan = plan_downtime(300, 8ull << 20, 125e6, 6);
    EXPECT_FALSE(lan.floored);
    EXPECT_EQ(lan.qemu_limit_ms, 226u);
    EXPECT_NEAR(lan.drain_ms + lan.resume_ms + double(lan.qemu_limit_ms), 300.0, 1.0);

    // Nothing measured yet: only the resume allowance comes off.
    EXPECT_EQ(plan_downtime(300, 8ull << 20, 0, 5).qemu_limit_ms, 295u);
    // A tiny limit still leaves QEMU at least 1 ms.
    EXPECT_EQ(plan_downtime(3, 1 << 20, 1e6, 5).qemu_limit_ms, 1u);
}

TEST(DowntimeBudget, RateMeterMeasuresOverItsWindow) {
    RateMeter m(1.0);
    EXPECT_EQ(m.rate(), 0);
    m.add(0.0, 0);
    m.add(0.1, 10'000'000);
    EXPECT_EQ(m.rate(), 0) << "a tenth of the window is too short to say";
    for (int i = 2; i <= 30; ++i) m.add(0.1 * i, uint64_t(i) * 10'000'000);
    EXPECT_NEAR(m.rate(), 100e6, 1e3);
    // The rate changes: after a full window only the new rate counts.
    uint64_t total = 300'000'000;
    for (int i = 31; i <= 45; ++i) m.add(0.1 * i, total += 1'000'000);
    EXPECT_NEAR(m.rate(), 10e6, 1e3);
    // A counter that goes back (a new migration) starts the meter over.
    m.add(5.0, 5);
    EXPECT_EQ(m.rate(), 0);
}
