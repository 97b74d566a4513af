#include "engine/convergence/rate_estimator.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::engine;

namespace {

TEST(RateEstimator, FirstSampleIsTheRate) {
    RateEstimator r(0.25);
    EXPECT_FALSE(r.ready());
    EXPECT_EQ(r.rate(), 0.0);
    r.add(1000, 2);
    EXPECT_TRUE(r.ready());
    EXPECT_DOUBLE_EQ(r.rate(), 500);
    EXPECT_DOUBLE_EQ(r.last(), 500);
}

TEST(RateEstimator, ExponentialWeighting) {
    RateEstimator r(0.25);
    r.add(100, 1);   // 100
    r.add(200, 1);   // 0.25*200 + 0.75*100 = 125
    EXPECT_DOUBLE_EQ(r.rate(), 125);
    r.add(50, 0.5);  // sample 100: 0.25*100 + 0.75*125 = 118.75
    EXPECT_DOUBLE_EQ(r.rate(), 118.75);
    EXPECT_DOUBLE_EQ(r.last(), 100);
    EXPECT_EQ(r.samples(), 3u);
}

TEST(RateEstimator, AlphaOneTracksTheNewestSample) {
    RateEstimator r(1.0);
    r.add(100, 1);
    r.add(700, 1);
    EXPECT_DOUBLE_EQ(r.rate(), 700);
}

TEST(RateEstimator, ConvergesToASteadyRate) {
    RateEstimator r(0.5);
    r.add(1e9, 1);
    for (int i = 0; i < 40; ++i) r.add(2e8, 0.1);  // 2 GB/s
    EXPECT_NEAR(r.rate(), 2e9, 1.0);
}

TEST(RateEstimator, MinSamples) {
    RateEstimator r(0.5, 3);
    r.add(1, 1);
    r.add(1, 1);
    EXPECT_FALSE(r.ready());
    r.add(1, 1);
    EXPECT_TRUE(r.ready());
    r.reset();
    EXPECT_FALSE(r.ready());
    EXPECT_EQ(r.samples(), 0u);
    EXPECT_EQ(r.rate(), 0.0);
    r.add(10, 1);  // after reset the first sample starts afresh
    EXPECT_DOUBLE_EQ(r.rate(), 10);
}

TEST(RateEstimator, RejectsBadSamplesAndParameters) {
    RateEstimator r;
    EXPECT_THROW(r.add(1, 0), Error);
    EXPECT_THROW(r.add(1, -1), Error);
    EXPECT_THROW(r.add(-1, 1), Error);
    EXPECT_THROW(r.add(std::numeric_limits<double>::infinity(), 1), Error);
    EXPECT_THROW(r.add(1, std::nan("")), Error);
    EXPECT_EQ(r.samples(), 0u);
    EXPECT_THROW(RateEstimator(0.0), Error);
    EXPECT_THROW(RateEstimator(1.5), Error);
    EXPECT_THROW(RateEstimator(0.5, 0), Error);
}

}  // namespace
