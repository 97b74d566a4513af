// A flood of like events writes a few lines per window, then one summary.
#include <gtest/gtest.h>

#include <thread>

#include "common/log.hpp"
#include "common/log_limiter.hpp"

using namespace rmig;
using namespace std::chrono_literals;

TEST(LogLimiter, WritesAFewLinesPerWindowAndSumsUpTheRest) {
    log::Capture cap;
    log::Limiter lim("test events", 3, 200ms);
    for (int i = 0; i < 100; ++i) lim.warn("event ", i);
    EXPECT_EQ(cap.count("event "), 3u);
    EXPECT_EQ(lim.suppressed(), 97u);
    std::this_thread::sleep_for(250ms);
    lim.warn("event after");
    EXPECT_NE(cap.wait_for("97 more test events not shown", 1s), "");
    EXPECT_EQ(cap.count("event after"), 1u);
}

TEST(LogCapture, OneAtATime) {
    log::Capture cap;
    EXPECT_THROW(log::Capture second, Error);
    log::warn("captured line");
    EXPECT_EQ(cap.count("captured line"), 1u);
}
