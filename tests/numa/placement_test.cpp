// Checks the placement policy documented in numa/placement.hpp.
#include "numa/placement.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "common/error.hpp"
#include "common/log.hpp"

using namespace rmig;
using namespace rmig::numa;

namespace {

const std::string kData = RMIG_NUMA_TEST_DATA;
// Two sockets, one node each, 8 cores x 2 hyperthreads: node 0 has PUs 0-15
// (core k = PUs 2k, 2k+1), node 1 has PUs 16-31.
const char* kTwoSockets = "pack:2 numa:1 core:8 pu:2";

std::vector<int> pus(const Placement& p) {
    std::vector<int> out;
    for (const WorkerSlot& w : p.workers) out.push_back(w.pu);
    return out;
}
std::vector<int> nodes(const Placement& p) {
    std::vector<int> out;
    for (const WorkerSlot& w : p.workers) out.push_back(w.node);
    return out;
}

class Placements : public ::testing::Test {
protected:
    void SetUp() override { rmig::log::set_level(rmig::log::Level::error); }  // wrap warnings are expected
};

}  // namespace

TEST_F(Placements, FewWorkersGetDistinctCoresOnTheNicsNode) {
    const Topology t = Topology::synthetic(kTwoSockets);
    const Placement p = plan(t, 1, 4);
    EXPECT_EQ(pus(p), (std::vector<int>{16, 18, 20, 22}));
    std::set<int> cores;
    for (const WorkerSlot& w : p.workers) {
        EXPECT_EQ(w.node, 1);
        EXPECT_FALSE(w.sibling);
        EXPECT_FALSE(w.shared);
        cores.insert(w.core);
    }
    EXPECT_EQ(cores.size(), 4u);
    EXPECT_EQ(p.buffer_node, 1);
    EXPECT_TRUE(p.warnings.empty());
}

TEST_F(Placements, SiblingsOnTheNicsNodeBeforeAnotherNode) {
    const Topology t = Topology::synthetic(kTwoSockets);
    const Placement p = plan(t, 1, 12);
    EXPECT_EQ(pus(p), (std::vector<int>{16, 18, 20, 22, 24, 26, 28, 30, 17, 19, 21, 23}));
    for (size_t i = 0; i < p.workers.size(); ++i) {
        EXPECT_EQ(p.workers[i].node, 1);
        EXPECT_EQ(p.workers[i].sibling, i >= 8) << "worker " << i;
    }
}

TEST_F(Placements, SpillsToTheNextNodeOnlyWhenTheNicsNodeIsFull) {
    const Topology t = Topology::synthetic(kTwoSockets);
    const Placement p = plan(t, 1, 20);
    for (size_t i = 0; i < 16; ++i) EXPECT_EQ(p.workers[i].node, 1) << "worker " << i;
    // Spilled workers again take distinct cores first.
    const std::vector<int> all = pus(p);
    EXPECT_EQ(std::vector<int>(all.begin() + 16, all.end()), (std::vector<int>{0, 2, 4, 6}));
    EXPECT_EQ(p.node_order, (std::vector<int>{1, 0}));
    EXPECT_EQ(p.buffer_node, 1);
}

TEST_F(Placements, UnknownNicSpreadsRoundRobinFromNodeZero) {
    const Topology t = Topology::synthetic(kTwoSockets);
    const Placement p = plan(t, std::nullopt, 4);
    EXPECT_EQ(nodes(p), (std::vector<int>{0, 1, 0, 1}));
    EXPECT_EQ(pus(p), (std::vector<int>{0, 16, 2, 18}));
    EXPECT_EQ(p.buffer_node, 0);

    // All 16 cores before the first sibling.
    const Placement q = plan(t, std::nullopt, 18);
    for (size_t i = 0; i < 16; ++i) EXPECT_FALSE(q.workers[i].sibling) << "worker " << i;
    EXPECT_EQ(q.workers[16].pu, 1);
    EXPECT_EQ(q.workers[17].pu, 17);
}

TEST_F(Placements, MoreWorkersThanPusWrapWithAWarning) {
    const Topology t = Topology::synthetic(kTwoSockets);
    const Placement p = plan(t, 0, 40);
    ASSERT_EQ(p.workers.size(), 40u);
    for (size_t i = 0; i < 32; ++i) EXPECT_FALSE(p.workers[i].shared);
    for (size_t i = 32; i < 40; ++i) {
        EXPECT_TRUE(p.workers[i].shared);
        EXPECT_EQ(p.workers[i].pu, p.workers[i - 32].pu);
    }
    ASSERT_EQ(p.warnings.size(), 1u);
    EXPECT_NE(p.warnings[0].find("only 32 PUs"), std::string::npos) << p.warnings[0];
    EXPECT_NE(p.explain().find("warning:"), std::string::npos);
}

TEST_F(Placements, WithoutDistancesTheSamePackageComesFirst) {
    const Topology t = Topology::synthetic("pack:2 numa:2 core:2 pu:1");
    EXPECT_EQ(plan(t, 1, 1).node_order, (std::vector<int>{1, 0, 2, 3}));
    EXPECT_EQ(plan(t, 2, 1).node_order, (std::vector<int>{2, 3, 0, 1}));
    const Placement p = plan(t, 2, 6);
    EXPECT_FALSE(p.used_distances);
    EXPECT_EQ(nodes(p), (std::vector<int>{2, 2, 3, 3, 0, 0}));
}

TEST_F(Placements, LatencyMatrixDecidesTheSpillOrder) {
    // From node 0: node 2 at 12, node 3 at 20, node 1 at 30.
    const Topology t = Topology::xml_file(kData + "/four-nodes-with-latencies.xml");
    const Placement p = plan(t, 0, 8);
    EXPECT_TRUE(p.used_distances);
    EXPECT_EQ(p.node_order, (std::vector<int>{0, 2, 3, 1}));
    EXPECT_EQ(nodes(p), (std::vector<int>{0, 0, 2, 2, 3, 3, 1, 1}));
}

TEST_F(Placements, NicFoundInXmlDrivesThePlan) {
    const Topology t = Topology::xml_file(kData + "/two-packages-nic-on-package1.xml");
    const Placement p = plan(t, t.node_of_netdev("mlx5_0"), 2);
    EXPECT_EQ(pus(p), (std::vector<int>{4, 6}));
    EXPECT_EQ(p.buffer_node, 1);
}

TEST_F(Placements, RejectsNonsense) {
    const Topology t = Topology::synthetic(kTwoSockets);
    EXPECT_THROW(plan(t, 1, 0), Error);
    try {
        plan(t, 5, 2);
        ADD_FAILURE() << "node 5 accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("node 5"), std::string::npos) << e.what();
    }
}

TEST_F(Placements, ExplainsAndSerialises) {
    const Topology t = Topology::synthetic(kTwoSockets);
    const Placement p = plan(t, 1, 10);
    const std::string text = p.explain();
    EXPECT_NE(text.find("NIC on node 1"), std::string::npos) << text;
    EXPECT_NE(text.find("worker 9 -> PU 19"), std::string::npos) << text;
    EXPECT_NE(text.find("8 on cores of their own, 2 on hyperthread siblings"), std::string::npos) << text;

    const nlohmann::json j = p.to_json();
    EXPECT_EQ(j["nic_node"], 1);
    EXPECT_EQ(j["buffer_node"], 1);
    EXPECT_EQ(j["ranked_by"], "package");
    ASSERT_EQ(j["workers"].size(), 10u);
    EXPECT_EQ(j["workers"][9]["pu"], 19);
    EXPECT_EQ(j["workers"][9]["sibling"], true);

    EXPECT_TRUE(plan(t, std::nullopt, 1).to_json()["nic_node"].is_null());
}
