// Which node memory-mode workers go to (engine/memory/worker_placement.hpp),
// on machines we do not have: hwloc synthetic topologies and an XML export
// with a NIC on the second package (tests/numa/data).
#include "engine/memory/worker_placement.hpp"

#include <gtest/gtest.h>

#include "common/log.hpp"

using namespace rmig;
using namespace rmig::engine;

namespace {

const std::string kData = RMIG_NUMA_TEST_DATA;
// Node 0: PUs 0-15, node 1: PUs 16-31 (8 cores x 2 hyperthreads each).
const char* kTwoSockets = "pack:2 numa:1 core:8 pu:2";

std::vector<int> nodes(const WorkerPlacement& p, unsigned n) {
    std::vector<int> out;
    for (unsigned w = 0; w < n; ++w) out.push_back(p.node_of(w));
    return out;
}

struct WorkerPlacementTest : ::testing::Test {
    void SetUp() override { log::set_level(log::Level::error); }
};

}  // namespace

TEST_F(WorkerPlacementTest, NicsNodeWinsOverTheMemorysNode) {
    const auto t = numa::Topology::xml_file(kData + "/two-packages-nic-on-package1.xml");
    WorkerPlacement p = choose_worker_placement(t, "mlx5_0", 0, 2);
    ASSERT_TRUE(p.plan);
    EXPECT_TRUE(p.apply);
    EXPECT_EQ(p.basis, "NIC mlx5_0 on node 1");
    EXPECT_EQ(nodes(p, 2), (std::vector<int>{1, 1}));
    EXPECT_EQ(p.pu_of(0), 4);
    EXPECT_EQ(p.pu_of(1), 6);
    EXPECT_EQ(p.plan->buffer_node, 1);
}

TEST_F(WorkerPlacementTest, UnknownNicFallsBackToTheMemorysNode) {
    const auto t = numa::Topology::synthetic(kTwoSockets);  // synthetic: no IO devices
    WorkerPlacement p = choose_worker_placement(t, "mlx5_0", 1, 3);
    ASSERT_TRUE(p.plan);
    EXPECT_NE(p.basis.find("NIC mlx5_0 locality unknown"), std::string::npos) << p.basis;
    EXPECT_NE(p.basis.find("memory on node 1"), std::string::npos) << p.basis;
    EXPECT_EQ(nodes(p, 3), (std::vector<int>{1, 1, 1}));
    EXPECT_EQ(p.pu_of(0), 16);  // one PU per core before any sibling
    EXPECT_EQ(p.pu_of(1), 18);
    EXPECT_EQ(p.plan->buffer_node, 1);
}

TEST_F(WorkerPlacementTest, NoNicAndNoMemoryNodeSpreadsOverNodes) {
    const auto t = numa::Topology::synthetic(kTwoSockets);
    WorkerPlacement p = choose_worker_placement(t, "", std::nullopt, 4);
    ASSERT_TRUE(p.plan);
    EXPECT_EQ(p.basis, "no NIC or memory node known");
    EXPECT_EQ(nodes(p, 4), (std::vector<int>{0, 1, 0, 1}));
}

TEST_F(WorkerPlacementTest, MemoryOnANodeWithoutPusIsIgnored) {
    const auto t = numa::Topology::synthetic(kTwoSockets);
    WorkerPlacement p = choose_worker_placement(t, "", 7, 2);  // no node 7
    EXPECT_EQ(p.basis, "no NIC or memory node known");
}

TEST_F(WorkerPlacementTest, OneNodeIsPlannedButNotApplied) {
    const auto t = numa::Topology::synthetic("pack:1 numa:1 core:2 pu:1");
    WorkerPlacement p = choose_worker_placement(t, "", 0, 2);
    ASSERT_TRUE(p.plan);
    EXPECT_FALSE(p.apply);
    EXPECT_EQ(p.pu_of(0), -1);
    EXPECT_EQ(p.node_of(1), -1);
    EXPECT_EQ(p.summary(), "memory on node 0: workers on PU 0(node 0),1(node 0), buffers on node 0 (one node: not applied)");
}

TEST_F(WorkerPlacementTest, ThisMachineGivesASummaryAndNeverThrows) {
    std::vector<std::byte> mem(1 << 16);
    auto* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(mem.data()) + 4095) & ~uintptr_t{4095});
    WorkerPlacement p = place_workers("no-such-nic0", {Region{aligned, 4096, 0, "ram"}}, 2);
    EXPECT_FALSE(p.summary().empty());
    std::printf("[ info ] %s\n", p.summary().c_str());
}
