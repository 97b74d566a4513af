// rmig tunnel-send and tunnel-receive over tcp loopback, with real UNIX
// sockets at both ends standing where the QEMUs would be: each source
// connection reaches its own destination connection in connect order, its
// bytes verified both ways; migrations follow one another on one path and
// several paths run side by side; a destination socket that never appears,
// or a destination that dies mid stream, fails that migration only -- the
// source's connection is closed (QEMU's migration fails, the guest stays)
// -- and the next one succeeds.
#include "tests/qemu-plugin/tunnel_fixture.hpp"

#include "common/metrics/registry.hpp"

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

using namespace rmig;
using namespace rmig::qemu::tunnel;
using namespace rmig::test::tunnel;
using namespace std::chrono_literals;

TEST(TunnelNames, OnlyPlainFileNamesAreConnected) {
    EXPECT_EQ(checked_socket_name("vm-1.migrate_0.sock"), "vm-1.migrate_0.sock");
    for (const std::string& bad : std::vector<std::string>{"", ".", "..", "../etc/x", "a/b", "vm 1", std::string(101, 'a'), std::string("a\0b", 3)})
        EXPECT_THROW(checked_socket_name(bad), Error) << bad;
    EXPECT_EQ(base_name("/run/rmig/vm1.sock"), "vm1.sock");
    EXPECT_EQ(base_name("vm1.sock"), "vm1.sock");
    EXPECT_EQ(base_name("/run/rmig/"), "rmig");
}

TEST(Tunnel, CarriesEachConnectionToItsPeerInConnectOrder) {
    Tunnel t;
    constexpr uint32_t kConns = 3;
    constexpr size_t kSize = 4 << 20;
    DestQemu dest(t.dst_path(), kConns);
    auto answers = source_qemu(t.src_path(), kConns, kSize);
    expect_delivered(dest, answers, kConns, kSize);
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_TRUE(sent[0].ok) << sent[0].error;
    EXPECT_TRUE(received[0].ok) << received[0].error;
    EXPECT_EQ(sent[0].session, received[0].session);
    EXPECT_EQ(received[0].socket, t.dst_path());
    EXPECT_EQ(sent[0].streams.size(), kConns);
    for (auto& s : sent[0].streams) EXPECT_EQ(s.to_link, kSize);
}

TEST(Tunnel, StripedAndCompressedFlowsKeepEveryConnectionWhole) {
    Tunnel t(3, engine::CompressionMode::zstd);
    constexpr uint32_t kConns = 2;
    constexpr size_t kSize = 6 << 20;
    DestQemu dest(t.dst_path(), kConns);
    auto answers = source_qemu(t.src_path(), kConns, kSize);
    expect_delivered(dest, answers, kConns, kSize);
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_TRUE(sent[0].ok) << sent[0].error;
    uint64_t wire = 0;
    for (auto& s : sent[0].streams) wire += s.wire;
    EXPECT_LT(wire, uint64_t{kConns} * kSize) << "zstd on 6-bit data must shrink it";
}

TEST(Tunnel, MigrationsFollowOneAnotherOnOnePath) {
    Tunnel t;
    for (int run = 0; run < 2; ++run) {
        DestQemu dest(t.dst_path(), 2);
        auto answers = source_qemu(t.src_path(), 2, 1 << 20);
        expect_delivered(dest, answers, 2, 1 << 20);
    }
    auto [sent, received] = t.reports(2);
    ASSERT_EQ(sent.size(), 2u);
    ASSERT_EQ(received.size(), 2u);
    EXPECT_TRUE(sent[0].ok && sent[1].ok) << sent[0].error << sent[1].error;
    EXPECT_TRUE(received[0].ok && received[1].ok) << received[0].error << received[1].error;
    EXPECT_NE(sent[0].session, sent[1].session);
}

TEST(Tunnel, AMissingDestinationSocketFailsThatMigrationOnly) {
    Tunnel t;
    // Nobody listens at the destination: the source's connection is closed
    // without an answer (QEMU's migration fails there; its guest keeps running).
    auto answers = source_qemu(t.src_path(), 1, 1 << 20);
    EXPECT_EQ(answers[0], "");
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_FALSE(sent[0].ok);
    EXPECT_FALSE(received[0].ok);
    EXPECT_NE(received[0].error.find(t.dst_path()), std::string::npos) << received[0].error;
    // The service goes on: the next migration succeeds.
    DestQemu dest(t.dst_path(), 1);
    auto again = source_qemu(t.src_path(), 1, 1 << 20);
    expect_delivered(dest, again, 1, 1 << 20);
    auto [sent2, received2] = t.reports(2);
    ASSERT_EQ(sent2.size(), 2u);
    EXPECT_TRUE(sent2[1].ok) << sent2[1].error;
}

TEST(Tunnel, ADestinationThatDiesMidStreamClosesTheSource) {
    Tunnel t;
    DestQemu dest(t.dst_path(), 1, 256 << 10);
    auto answers = source_qemu(t.src_path(), 1, 16 << 20);
    EXPECT_EQ(answers[0], "") << "the source connection must end without an answer";
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_FALSE(sent[0].ok);
    EXPECT_FALSE(received[0].ok);
}

TEST(Tunnel, MigrationsOfSeveralGuestsRunSideBySide) {
    const std::vector<std::string> names{"vm1.sock", "vm2.sock", "vm3.sock"};
    Tunnel t(1, engine::CompressionMode::none, names);
    constexpr size_t kSize = 2 << 20;
    std::vector<std::unique_ptr<DestQemu>> dests;
    for (auto& n : names) dests.push_back(std::make_unique<DestQemu>(t.dst_path(n), 2));
    std::vector<std::future<std::vector<std::string>>> sources;
    // Each guest's connections carry bytes of their own (seeds 100 apart).
    for (uint32_t i = 0; i < names.size(); ++i)
        sources.push_back(std::async(std::launch::async,
                                     [&t, n = names[i], i] { return source_qemu(t.src_path(n), 2, kSize, 100 * i); }));
    for (uint32_t i = 0; i < names.size(); ++i) expect_delivered(*dests[i], sources[i].get(), 2, kSize, 100 * i);
    auto [sent, received] = t.reports(names.size());
    ASSERT_EQ(sent.size(), names.size());
    ASSERT_EQ(received.size(), names.size());
    std::set<std::string> sockets;
    for (auto& r : received) {
        EXPECT_TRUE(r.ok) << r.error;
        sockets.insert(r.socket);
    }
    for (auto& r : sent) EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(sockets.size(), names.size()) << "each guest's migration went to its own socket";
}

// Over rdma: inside the Soft-RoCE VM (ctest -R tunnel_over_rdma_in_softroce_vm);
// on a host without an RDMA device it is skipped.
TEST(Tunnel, OverRdmaCarriesEachConnectionInOrder) {
    std::error_code ec;
    if (!std::filesystem::exists("/sys/class/infiniband", ec) ||
        std::filesystem::is_empty("/sys/class/infiniband", ec))
        GTEST_SKIP() << "no RDMA device on this machine; this case runs inside the Soft-RoCE VM "
                        "(ctest -R tunnel_over_rdma_in_softroce_vm)";
    const char* ip = std::getenv("RMIG_VM_RDMA_IP");
    TunnelLink link;
    link.listen_uri = cat("rdma:", ip ? ip : "10.11.12.1", ":0");
    Tunnel t(1, engine::CompressionMode::none, {"vm1.sock"}, link);
    constexpr uint32_t kConns = 3;
    constexpr size_t kSize = 1 << 20;
    DestQemu dest(t.dst_path(), kConns);
    auto answers = source_qemu(t.src_path(), kConns, kSize);
    expect_delivered(dest, answers, kConns, kSize);
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_TRUE(sent[0].ok) << sent[0].error;
    EXPECT_TRUE(received[0].ok) << received[0].error;
}

// A running session's series (both sides, this process's registry) pass
// Prometheus' own checker, and go away with the session.
TEST(Tunnel, MetricsOfARunningSessionPassPromtoolAndEndWithIt) {
    if (!std::filesystem::exists("/usr/bin/promtool"))
        GTEST_SKIP() << "promtool is not installed (Debian package prometheus; scripts/deps.sh installs it)";
    Tunnel t;
    DestQemu dest(t.dst_path(), 1);
    UniqueFd src = net::unix_connect(t.src_path(), 3000ms);
    auto data = payload(1, 1 << 20);
    net::write_full(src.get(), data.data(), data.size());
    auto& registry = metrics::process_registry();
    std::string text;
    for (int i = 0; i < 100; ++i) {  // both sides' series, once the bytes went through
        text = registry.expose();
        if (text.find("role=\"tunnel-send\"") != std::string::npos &&
            text.find("role=\"tunnel-receive\"") != std::string::npos && text.find("socket=\"vm1.sock\"") != std::string::npos)
            break;
        std::this_thread::sleep_for(50ms);
    }
    ASSERT_NE(text.find("role=\"tunnel-receive\""), std::string::npos) << text;
    TempDir dir("tunnel-metrics");
    std::string file = dir.path() + "/scrape.txt";
    std::ofstream(file) << text;
    int rc = std::system(cat("/usr/bin/promtool check metrics < ", file, " > ", file, ".out 2>&1").c_str());
    std::stringstream said;
    said << std::ifstream(file + ".out").rdbuf();
    EXPECT_EQ(WEXITSTATUS(rc), 0) << said.str() << "\n" << text;
    ::shutdown(src.get(), SHUT_WR);
    EXPECT_EQ(read_to_eof(src.get()).size(), std::string("got 1048576 on connection 1").size());
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_TRUE(sent[0].ok) << sent[0].error;
    std::string after = registry.expose();
    EXPECT_EQ(after.find(sent[0].session), std::string::npos) << "the ended session's series are still there";
    EXPECT_NE(after.find("rmig_migrations_total"), std::string::npos);
}

