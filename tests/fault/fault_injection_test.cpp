// The fixed fault-injection set on real QEMU pairs: each case breaks a
// migration through rmig (link cut, corrupted byte, stalled or delayed channel,
// kill -9 of either rmig or of the destination QEMU) at a chosen point and
// checks the invariants in lab/fault_harness.hpp: the source keeps running with
// its memory intact, the destination never runs a partial guest, nothing hangs,
// and a retry on the same source verifies byte for byte.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "common/process.hpp"
#include "lab/fault_harness.hpp"

using namespace rmig;

class FaultInjection : public testing::TestWithParam<lab::FaultCase> {};

TEST_P(FaultInjection, SourceSurvivesDestinationStaysSafeRetryVerifies) {
    Process::children_die_with_parent(true);  // a ctest timeout leaves no QEMU behind
    lab::HarnessOptions o;
    o.stall_timeout_s = 3;
    o.case_deadline_s = 90;
    // Where a fault lands is a race with QEMU (a switchover lasts ~0.1 s); a
    // case that missed its point is run again, and every run must pass. A
    // miss costs ~1.5 s; three attempts all missed the switchover once in CI,
    // and once a stall landed on a channel that had already finished.
    lab::CaseResult r;
    for (int attempt = 1; attempt <= 8; ++attempt) {
        r = lab::run_case(GetParam(), o);
        if (!r.passed) break;
        bool on_point = r.observed == GetParam().point;
        // A stall or cut on a channel that had already carried its last byte
        // (the switchover is short) leaves nothing to break: a miss, not a pass.
        bool harmless = on_point && GetParam().kind != lab::FaultKind::delay && r.migrate_exit == 0;
        if (on_point && !harmless) break;
        if (harmless)
            std::printf("[ info ] attempt %d fired at %s after the channel's last byte: again\n",
                        attempt, lab::to_string(r.observed));
        else
            std::printf("[ info ] attempt %d fired at %s, not %s: again\n", attempt,
                        lab::to_string(r.observed), lab::to_string(GetParam().point));
    }
    std::string why;
    for (auto& f : r.failures) why += "\n  - " + f;
    EXPECT_TRUE(r.passed) << GetParam().describe() << " (fired " << lab::to_string(r.observed)
                          << ", migrate exit " << r.migrate_exit << ", receive exit "
                          << r.receive_exit << ", lab dir " << r.dir << "):" << why;
    // The case must have exercised what it names, or it proves nothing.
    EXPECT_EQ(r.observed, GetParam().point) << GetParam().describe();
    if (GetParam().kind != lab::FaultKind::delay) EXPECT_NE(r.migrate_exit, 0) << "the fault did not bite";
    else EXPECT_EQ(r.migrate_exit, 0) << "a short delay must not fail the migration: " << r.migrate_error;
    EXPECT_LT(r.seconds, 90);
    std::printf("[ info ] %s: %.1f s, source: %s; destination: %s\n", GetParam().describe().c_str(),
                r.seconds, r.migrate_error.c_str(), r.receive_error.c_str());
}

TEST(FaultInjectionSet, CoversEveryKindAndPoint) {
    std::set<lab::FaultKind> kinds;
    std::set<lab::FaultPoint> points;
    for (auto& c : lab::ci_cases()) {
        kinds.insert(c.kind);
        points.insert(c.point);
    }
    EXPECT_EQ(kinds.size(), std::size(lab::kAllKinds));
    EXPECT_EQ(points.size(), std::size(lab::kAllPoints));
}

INSTANTIATE_TEST_SUITE_P(CiSet, FaultInjection, testing::ValuesIn(lab::ci_cases()),
                         [](const testing::TestParamInfo<lab::FaultCase>& p) {
                             std::string n = std::to_string(p.index) + "_" +
                                             lab::to_string(p.param.kind) + "_" +
                                             lab::to_string(p.param.point);
                             for (auto& ch : n)
                                 if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return n;
                         });
