// The admission bounds of listeners: newer arrivals push out the oldest of
// the most numerous address, never the arrival itself.
#include <gtest/gtest.h>

#include "transport/admission.hpp"

using namespace rmig::transport;

TEST(Admission, WithinBoundsNothingIsDropped) {
    Admission a({4, 2});
    EXPECT_TRUE(a.admit(1, "10.0.0.1").empty());
    EXPECT_TRUE(a.admit(2, "10.0.0.2").empty());
    EXPECT_TRUE(a.admit(3, "10.0.0.1").empty());
    EXPECT_EQ(a.size(), 3u);
    EXPECT_EQ(a.from("10.0.0.1"), 2u);
}

TEST(Admission, AnAddressAtItsBoundLosesItsOwnOldest) {
    Admission a({10, 2});
    a.admit(1, "A");
    a.admit(2, "B");
    a.admit(3, "A");
    EXPECT_EQ(a.admit(4, "A"), std::vector<uint64_t>{1});
    EXPECT_EQ(a.from("A"), 2u);
    EXPECT_EQ(a.from("B"), 1u) << "another address is not touched";
    EXPECT_EQ(a.admit(5, "A"), std::vector<uint64_t>{3});
}

TEST(Admission, AtTheTotalTheMostNumerousAddressGivesWay) {
    Admission a({4, 3});
    a.admit(1, "flood");
    a.admit(2, "flood");
    a.admit(3, "real");
    a.admit(4, "flood");
    // Full: a new peer pushes out the flood's oldest, not the real one's.
    EXPECT_EQ(a.admit(5, "other"), std::vector<uint64_t>{1});
    EXPECT_EQ(a.from("real"), 1u);
    EXPECT_EQ(a.size(), 4u);
}

TEST(Admission, RemovedEntriesFreeTheirPlace) {
    Admission a({2, 2});
    a.admit(1, "A");
    a.admit(2, "A");
    a.remove(1);
    a.remove(99);  // unknown: ignored
    EXPECT_TRUE(a.admit(3, "A").empty());
    a.remove(2);
    a.remove(3);
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(a.from("A"), 0u);
}

TEST(Admission, LimitsAreSane) {
    Admission a({0, 0});  // clamped to one
    EXPECT_TRUE(a.admit(1, "A").empty());
    EXPECT_EQ(a.admit(2, "B"), std::vector<uint64_t>{1});
}

TEST(Admission, PeerAddressDropsThePort) {
    EXPECT_EQ(peer_address("10.0.0.2:7070"), "10.0.0.2");
    EXPECT_EQ(peer_address("[fe80::1]:7070"), "fe80::1");
    EXPECT_EQ(peer_address("fe80::1"), "fe80::1");
    EXPECT_EQ(peer_address("unix"), "unix");
}

TEST(Admission, StalledEntriesGoBeforeOlderOnesMakingProgress) {
    Admission a({10, 3});
    a.admit(1, "A");  // talking
    a.admit(2, "A");  // stalled
    a.admit(3, "A");  // stalled
    auto stalled = [](uint64_t id) { return id != 1; };
    EXPECT_EQ(a.admit(4, "A", stalled), std::vector<uint64_t>{2});
    EXPECT_EQ(a.admit(5, "A", stalled), std::vector<uint64_t>{3});
    EXPECT_EQ(a.admit(6, "A", [](uint64_t) { return false; }), std::vector<uint64_t>{1}) << "none stalled: the oldest";
}
