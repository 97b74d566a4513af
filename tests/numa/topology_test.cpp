#include "numa/topology.hpp"

#include <gtest/gtest.h>

#include <string>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::numa;

namespace {

const std::string kData = RMIG_NUMA_TEST_DATA;
// Two packages with one node each (2 cores x 2 PUs); a ConnectX under
// package 1 (ens3f0np0, mlx5_0), an I219 under the machine root (eno1), and a
// software rxe0 without PCI parent.
const std::string kNicXml = kData + "/two-packages-nic-on-package1.xml";
// Four single-node packages with a latency matrix.
const std::string kLatencyXml = kData + "/four-nodes-with-latencies.xml";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(Topology, SyntheticNodesCoresAndPackages) {
    const Topology t = Topology::synthetic("pack:2 numa:2 core:4 pu:2");
    ASSERT_EQ(t.nodes().size(), 4u);
    for (int i = 0; i < 4; ++i) {
        const Node& n = t.nodes()[static_cast<size_t>(i)];
        EXPECT_EQ(n.os_index, i);
        EXPECT_EQ(n.package, i / 2);
        EXPECT_EQ(n.pus.size(), 8u);
        EXPECT_EQ(n.pus.front(), 8 * i);
        EXPECT_GT(n.memory_bytes, 0u);
    }
    const std::vector<Core> cores = t.cores_of_node(1);
    ASSERT_EQ(cores.size(), 4u);
    EXPECT_EQ(cores[0].pus, (std::vector<int>{8, 9}));
    EXPECT_EQ(cores[3].pus, (std::vector<int>{14, 15}));
    EXPECT_EQ(cores[0].node, 1);
    EXPECT_FALSE(t.has_distances());
    EXPECT_FALSE(t.distance(0, 1));
}

TEST(Topology, CoresWithoutCoreObjectsAreThePUs) {
    const Topology t = Topology::synthetic("pack:2 numa:1 pu:3");
    const std::vector<Core> cores = t.cores_of_node(1);
    ASSERT_EQ(cores.size(), 3u);
    EXPECT_EQ(cores[0].pus, (std::vector<int>{3}));
}

TEST(Topology, RejectsUnknownNodesAndBadInput) {
    const Topology t = Topology::synthetic("pack:2 numa:1 core:2 pu:1");
    EXPECT_FALSE(t.has_node(2));
    try {
        t.node(2);
        ADD_FAILURE() << "node 2 accepted";
    } catch (const Error& e) {
        EXPECT_TRUE(contains(e.what(), "node 2")) << e.what();
    }
    EXPECT_THROW(Topology::synthetic("pack:two"), Error);
    try {
        Topology::xml_file(kData + "/no-such-file.xml");
        ADD_FAILURE() << "missing XML accepted";
    } catch (const Error& e) {
        EXPECT_TRUE(contains(e.what(), "no-such-file.xml")) << e.what();
    }
}

TEST(Topology, FindsThePciNicUnderPackageOne) {
    const Topology t = Topology::xml_file(kNicXml);
    ASSERT_EQ(t.nodes().size(), 2u);
    EXPECT_EQ(t.node_of_pci("0000:3b:00.0"), 1);
    EXPECT_EQ(t.node_of_pci("3b:00.0"), 1);  // domain 0 implied
    EXPECT_EQ(t.node_of_netdev("ens3f0np0"), 1);
    EXPECT_EQ(t.node_of_netdev("mlx5_0"), 1);
    const NicLocality loc = t.locate_nic("mlx5_0");
    EXPECT_EQ(loc.nodes, (std::vector<int>{1}));
    EXPECT_TRUE(contains(loc.detail, "Package L#1")) << loc.detail;
}

TEST(Topology, SaysWhyANicsNodeIsUnknown) {
    const Topology t = Topology::xml_file(kNicXml);

    EXPECT_EQ(t.node_of_netdev("rxe0"), std::nullopt);
    EXPECT_TRUE(contains(t.locate_nic("rxe0").detail, "no PCI parent")) << t.locate_nic("rxe0").detail;

    // Under the machine root of a two-node box: the platform gave no locality.
    EXPECT_EQ(t.node_of_pci("0000:00:1f.6"), std::nullopt);
    EXPECT_EQ(t.node_of_netdev("eno1"), std::nullopt);
    EXPECT_TRUE(contains(t.locate_nic("eno1").detail, "whole machine")) << t.locate_nic("eno1").detail;

    EXPECT_EQ(t.node_of_pci("0000:99:00.0"), std::nullopt);
    EXPECT_TRUE(contains(t.locate_nic("0000:99:00.0").detail, "no PCI device 0000:99:00.0"));
    EXPECT_EQ(t.node_of_netdev("eth7"), std::nullopt);
    EXPECT_TRUE(contains(t.locate_nic("eth7").detail, "no network or RDMA device named eth7"));

    // A name is not a PCI address and the other way round.
    EXPECT_EQ(t.node_of_pci("mlx5_0"), std::nullopt);
    EXPECT_EQ(t.node_of_netdev("0000:3b:00.0"), std::nullopt);

    const Topology syn = Topology::synthetic("pack:2 numa:1 core:2 pu:1");
    EXPECT_EQ(syn.node_of_pci("0000:3b:00.0"), std::nullopt);
    EXPECT_TRUE(contains(syn.locate_nic("eth0").detail, "synthetic"));
}

TEST(Topology, ListsNetworkAndRdmaDevices) {
    const Topology t = Topology::xml_file(kNicXml);
    const std::vector<NetDevice> devs = t.net_devices();
    ASSERT_EQ(devs.size(), 4u);
    int found = 0;
    for (const NetDevice& d : devs) {
        if (d.name == "mlx5_0") {
            ++found;
            EXPECT_EQ(d.kind, "rdma");
            EXPECT_EQ(d.pci_bdf, "0000:3b:00.0");
            EXPECT_EQ(d.locality.node(), 1);
        }
        if (d.name == "rxe0") {
            ++found;
            EXPECT_TRUE(d.pci_bdf.empty());
            EXPECT_EQ(d.locality.node(), std::nullopt);
        }
    }
    EXPECT_EQ(found, 2);
}

TEST(Topology, ReadsTheLatencyMatrix) {
    const Topology t = Topology::xml_file(kLatencyXml);
    ASSERT_TRUE(t.has_distances());
    EXPECT_EQ(t.distance(0, 0), 10u);
    EXPECT_EQ(t.distance(0, 2), 12u);
    EXPECT_EQ(t.distance(3, 1), 12u);
    EXPECT_EQ(t.distance(0, 9), std::nullopt);
}

TEST(Topology, LooksLikePciAddress) {
    EXPECT_TRUE(looks_like_pci_bdf("0000:3b:00.0"));
    EXPECT_TRUE(looks_like_pci_bdf("3b:00.1"));
    EXPECT_TRUE(looks_like_pci_bdf("10000:01:00.0"));  // VMD domains
    EXPECT_FALSE(looks_like_pci_bdf("eth0"));
    EXPECT_FALSE(looks_like_pci_bdf("mlx5_0"));
    EXPECT_FALSE(looks_like_pci_bdf("3b:00.8"));
    EXPECT_FALSE(looks_like_pci_bdf("00:3b:00.0"));      // domain too short
    EXPECT_FALSE(looks_like_pci_bdf("0000-3b:00.0"));
    EXPECT_FALSE(looks_like_pci_bdf("0000:3b:00.0 "));
    EXPECT_FALSE(looks_like_pci_bdf(""));
}

TEST(Topology, LoadsThisMachine) {
    const Topology t = Topology::machine();
    ASSERT_FALSE(t.nodes().empty());
    bool any_pu = false;
    for (const Node& n : t.nodes()) any_pu = any_pu || !n.pus.empty();
    EXPECT_TRUE(any_pu);
    EXPECT_EQ(t.source(), "this machine");
}
