// rmig tunnel-send and tunnel-receive over dpdk on memif (both ends in this
// process, as the dpdk conformance suite does: one memif vdev pair per
// tunnel; tests/transport/conformance/dpdk_conformance_test.cpp says why):
// connections carried in order with their bytes verified both ways, and
// several guests' migrations side by side over the one link.
#include <unistd.h>

#include <atomic>
#include <set>

#include "tests/qemu-plugin/tunnel_fixture.hpp"

using namespace rmig;
using namespace rmig::test::tunnel;

namespace {

TunnelLink memif_link(const std::string& dir) {
    static std::atomic<int> links{0};
    int n = links++;
    TunnelLink l;
    l.transport.tuning.set("dpdk-eal", cat("--no-huge -m 1024 --no-pci --no-shconf --file-prefix=rmig-tunnel-", getpid()));
    l.transport.dead_peer_timeout = transport::Millis(5000);
    std::string socket = dir + "/memif.sock";
    l.listen_uri = cat("dpdk:net_memif", 2 * n, ",role=server,socket=", socket);
    l.connect_uri = cat("dpdk:net_memif", 2 * n + 1, ",role=client,socket=", socket);
    return l;
}

}  // namespace

TEST(TunnelOverDpdk, CarriesEachConnectionToItsPeerInConnectOrder) {
    TempDir dir("rmig-tunnel-memif");
    Tunnel t(1, engine::CompressionMode::none, {"vm1.sock"}, memif_link(dir.path()));
    constexpr uint32_t kConns = 3;
    constexpr size_t kSize = 2 << 20;
    DestQemu dest(t.dst_path(), kConns);
    auto answers = source_qemu(t.src_path(), kConns, kSize);
    expect_delivered(dest, answers, kConns, kSize);
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_TRUE(sent[0].ok) << sent[0].error;
    EXPECT_TRUE(received[0].ok) << received[0].error;
    EXPECT_EQ(sent[0].streams.size(), kConns);
}

TEST(TunnelOverDpdk, MigrationsOfTwoGuestsRunSideBySide) {
    TempDir dir("rmig-tunnel-memif");
    const std::vector<std::string> names{"vm1.sock", "vm2.sock"};
    Tunnel t(1, engine::CompressionMode::none, names, memif_link(dir.path()));
    constexpr size_t kSize = 1 << 20;
    std::vector<std::unique_ptr<DestQemu>> dests;
    for (auto& n : names) dests.push_back(std::make_unique<DestQemu>(t.dst_path(n), 2));
    std::vector<std::future<std::vector<std::string>>> sources;
    for (uint32_t i = 0; i < names.size(); ++i)
        sources.push_back(std::async(std::launch::async,
                                     [&t, n = names[i], i] { return source_qemu(t.src_path(n), 2, kSize, 100 * i); }));
    for (uint32_t i = 0; i < names.size(); ++i) expect_delivered(*dests[i], sources[i].get(), 2, kSize, 100 * i);
    auto [sent, received] = t.reports(names.size());
    ASSERT_EQ(received.size(), names.size());
    for (auto& r : sent) EXPECT_TRUE(r.ok) << r.error;
    for (auto& r : received) EXPECT_TRUE(r.ok) << r.error;
}
