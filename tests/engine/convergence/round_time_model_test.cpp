// The round-time model (engine/convergence/round_time_model): a round's fixed
// cost and the link's bandwidth told apart from rounds of different sizes,
// and no fit where the rounds do not show a fixed cost.
#include "engine/convergence/round_time_model.hpp"

#include <gtest/gtest.h>

#include <cmath>

using rmig::engine::RoundTimeModel;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// A round of `bytes` over a link of `bandwidth` with `fixed` seconds per round
// and a relative jitter that changes sign from round to round.
double round_seconds(double bytes, double bandwidth, double fixed, double jitter, int i) {
    return fixed + bytes / bandwidth * (1.0 + jitter * std::sin(1.7 * i));
}

}  // namespace

TEST(RoundTimeModel, TellsAFixedCostFromTheBandwidth) {
    RoundTimeModel m;
    int i = 0;
    for (double mib : {4096.0, 1500.0, 600.0, 250.0, 120.0, 80.0})
        m.add(mib * kMiB, round_seconds(mib * kMiB, 2.5e9, 0.030, 0.02, i++));
    ASSERT_TRUE(m.fitted());
    EXPECT_NEAR(m.fixed_seconds(), 0.030, 0.004);
    EXPECT_NEAR(m.bandwidth(), 2.5e9, 0.05 * 2.5e9);
    EXPECT_NEAR(m.seconds_for(50 * kMiB), 0.030 + 50 * kMiB / 2.5e9, 0.005);
}

TEST(RoundTimeModel, JitterAloneIsNoFixedCost) {
    RoundTimeModel m;
    int i = 0;
    for (double mib : {4096.0, 700.0, 200.0, 60.0, 20.0, 8.0})
        m.add(mib * kMiB, round_seconds(mib * kMiB, 1.25e9, 0, 0.03, i++));
    EXPECT_FALSE(m.fitted());
    EXPECT_EQ(m.fixed_seconds(), 0);
}

TEST(RoundTimeModel, NeedsRoundsOfDifferentSizes) {
    RoundTimeModel m;
    for (int i = 0; i < 6; ++i) m.add(100 * kMiB, round_seconds(100 * kMiB, 2.5e9, 0.030, 0.02, i));
    EXPECT_FALSE(m.fitted()) << "one size cannot tell a fixed cost from a slower link";
}

TEST(RoundTimeModel, NeedsThreeRounds) {
    RoundTimeModel m;
    m.add(4096 * kMiB, round_seconds(4096 * kMiB, 2.5e9, 0.030, 0, 0));
    m.add(100 * kMiB, round_seconds(100 * kMiB, 2.5e9, 0.030, 0, 1));
    EXPECT_FALSE(m.fitted()) << "two rounds always fit exactly, jitter included";
    m.add(30 * kMiB, round_seconds(30 * kMiB, 2.5e9, 0.030, 0, 2));
    EXPECT_TRUE(m.fitted());
}

TEST(RoundTimeModel, IgnoresRoundsWithoutBytesOrTime) {
    RoundTimeModel m;
    m.add(0, 0.5);
    m.add(100 * kMiB, 0);
    m.add(-1, 1);
    m.add(NAN, 1);
    m.add(100 * kMiB, INFINITY);
    EXPECT_FALSE(m.fitted());
}

TEST(RoundTimeModel, LooksOnlyAtTheLastRounds) {
    RoundTimeModel m;
    int i = 0;
    for (double mib : {4096.0, 1000.0, 300.0, 100.0})  // no fixed cost at first
        m.add(mib * kMiB, round_seconds(mib * kMiB, 2.5e9, 0, 0, i++));
    EXPECT_FALSE(m.fitted());
    for (double mib : {2000.0, 600.0, 200.0, 90.0, 60.0, 40.0})  // then 20 ms per round
        m.add(mib * kMiB, round_seconds(mib * kMiB, 2.5e9, 0.020, 0, i++));
    ASSERT_TRUE(m.fitted());
    EXPECT_NEAR(m.fixed_seconds(), 0.020, 0.001);
}
