// The queue of greeted connections the tcp and dpdk hello gates hand out.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "transport/ready_queue.hpp"

using namespace rmig::transport;
using namespace std::chrono_literals;

TEST(ReadyQueue, HandsOutNewestFirst) {
    ReadyQueue<int> q({.total = 8, .per_peer = 8});
    for (int i = 1; i <= 3; ++i) EXPECT_TRUE(q.push(i, "10.0.0.1").empty());
    EXPECT_EQ(q.pop_newest(0ms), 3);
    EXPECT_EQ(q.pop_newest(0ms), 2);
    EXPECT_EQ(q.pop_newest(0ms), 1);
    EXPECT_FALSE(q.pop_newest(10ms));
}

TEST(ReadyQueue, AFloodingAddressLosesItsOldestNeverTheNewcomerNorOthers) {
    ReadyQueue<int> q({.total = 4, .per_peer = 3});
    EXPECT_TRUE(q.push(100, "real").empty());
    std::vector<int> dropped;
    for (int i = 1; i <= 10; ++i)
        for (int d : q.push(i, "flood")) dropped.push_back(d);
    // The flood keeps its 3 newest (8, 9, 10); the real peer's entry stays.
    EXPECT_EQ(dropped, (std::vector<int>{1, 2, 3, 4, 5, 6, 7}));
    EXPECT_EQ(q.pop_newest(0ms), 10);
    EXPECT_EQ(q.pop_newest(0ms), 9);
    EXPECT_EQ(q.pop_newest(0ms), 8);
    EXPECT_EQ(q.pop_newest(0ms), 100);
}

TEST(ReadyQueue, AWaitingOwnerWakesOnAPush) {
    ReadyQueue<int> q({});
    std::thread t([&] {
        std::this_thread::sleep_for(50ms);
        q.push(7, "a");
    });
    EXPECT_EQ(q.pop_newest(5000ms), 7);
    t.join();
}

TEST(ReadyQueue, TakeAllEmptiesItAndFreesItsBounds) {
    ReadyQueue<int> q({.total = 2, .per_peer = 2});
    q.push(1, "a");
    q.push(2, "a");
    EXPECT_EQ(q.take_all(), (std::vector<int>{1, 2}));
    EXPECT_TRUE(q.push(3, "a").empty());
    EXPECT_TRUE(q.push(4, "a").empty());
}
