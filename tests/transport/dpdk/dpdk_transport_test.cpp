// dpdk/ backend between two processes (rmig_dpdk_bulk_peer as server and
// client): memif without hugepages, af_packet on a veth pair between two
// network namespaces this test creates, deliberate loss, and the errors a user
// meets (port not found, link down, dead peer). Every byte is verified by the
// receiving process.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/process.hpp"
#include "common/temp_dir.hpp"

using namespace rmig;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// The last JSON line of a peer's output ({} if none).
json last_json(const std::string& path) {
    std::istringstream in(slurp(path));
    json j = json::object();
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line[0] == '{') j = json::parse(line, nullptr, false);
    return j.is_discarded() ? json::object() : j;
}

bool wait_for_text(const std::string& path, const std::string& text, std::chrono::milliseconds t,
                   Process& p) {
    auto deadline = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < deadline) {
        if (slurp(path).find(text) != std::string::npos) return true;
        if (!p.running()) return false;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

int run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// Two network namespaces joined by a veth pair, removed on every path.
class NetnsPair {
public:
    NetnsPair() {
        static std::atomic<int> n{0};
        std::string tag = std::to_string(getpid()) + "x" + std::to_string(n++);
        a = "rmigA" + tag;
        b = "rmigB" + tag;
        va = "rva" + tag;
        vb = "rvb" + tag;
        ok = run("ip netns add " + a) == 0;
        created_a = ok;
        ok = ok && run("ip netns add " + b) == 0;
        created_b = ok;
        ok = ok && run("ip link add " + va + " mtu 9000 type veth peer name " + vb + " mtu 9000") == 0;
        ok = ok && run("ip link set " + va + " netns " + a) == 0 &&
             run("ip link set " + vb + " netns " + b) == 0 &&
             run("ip -n " + a + " link set " + va + " up") == 0 &&
             run("ip -n " + b + " link set " + vb + " up") == 0;
        if (!ok) run("ip link del " + va);
    }
    ~NetnsPair() {
        if (created_a) run("ip netns del " + a);
        if (created_b) run("ip netns del " + b);
    }
    bool ok = false;
    bool created_a = false, created_b = false;
    std::string a, b, va, vb;
};

struct PairResult {
    int server_rc = -1, client_rc = -1;
    json server = json::object(), client = json::object();
    std::string server_log, client_log;
};

class DpdkPair : public ::testing::Test {
protected:
    TempDir dir{"rmig-dpdk-test"};

    std::vector<std::string> client_extra;  // more rmig_dpdk_bulk_peer options for the client

    std::vector<std::string> peer(const std::string& role, const std::string& uri, int channels,
                                  uint64_t bytes, int timeout_s, const std::string& netns = "") {
        std::vector<std::string> v;
        if (!netns.empty()) v = {"ip", "netns", "exec", netns};
        for (auto s : {std::string(RMIG_DPDK_BULK_PEER), role, uri, std::to_string(channels),
                       std::to_string(bytes), std::string("--timeout-s"), std::to_string(timeout_s)})
            v.push_back(s);
        if (role == "client") v.insert(v.end(), client_extra.begin(), client_extra.end());
        return v;
    }

    PairResult transfer(const std::string& server_uri, const std::string& client_uri, int channels,
                        uint64_t bytes, int timeout_s, const std::string& ns_server = "",
                        const std::string& ns_client = "") {
        PairResult r;
        std::string so = dir.path() + "/server.out", co = dir.path() + "/client.out";
        Process server(peer("server", server_uri, channels, bytes, timeout_s, ns_server),
                       {so, "=stdout"});
        if (!wait_for_text(so, "listening", 20s, server)) {
            r.server_log = slurp(so);
            return r;
        }
        Process client(peer("client", client_uri, channels, bytes, timeout_s, ns_client),
                       {co, "=stdout"});
        auto limit = std::chrono::seconds(timeout_s + 15);
        r.client_rc = client.wait_for(limit).value_or(-1);
        r.server_rc = server.wait_for(10s).value_or(-1);
        r.server = last_json(so);
        r.client = last_json(co);
        r.server_log = slurp(so);
        r.client_log = slurp(co);
        return r;
    }

    std::string memif(const std::string& role) const {
        return "dpdk:net_memif0,role=" + role + ",socket=" + dir.path() + "/memif.sock";
    }
};

void expect_exact(const PairResult& r, uint64_t bytes) {
    ASSERT_EQ(r.server_rc, 0) << r.server_log << "\n---\n" << r.client_log;
    ASSERT_EQ(r.client_rc, 0) << r.server_log << "\n---\n" << r.client_log;
    EXPECT_EQ(r.server.value("bytes", 0ull), bytes);
    EXPECT_TRUE(r.server.value("verified", false));
    EXPECT_EQ(r.client.value("bytes", 0ull), bytes);
}

// With one queue pair per channel: each channel on its own queue, and every
// queue carried frames out (tx) -- and, where the port pairs queues (memif),
// in (rx) too.
void expect_queue_per_channel(const json& side, size_t queues, bool rx_per_queue) {
    ASSERT_TRUE(side.contains("queues")) << side.dump();
    ASSERT_EQ(side["queues"].size(), queues) << side.dump();
    std::vector<int> used(queues);
    for (auto& q : side["channel_queues"]) ++used.at(q.get<size_t>());
    for (size_t q = 0; q < queues; ++q) {
        EXPECT_EQ(used[q], 1) << "queue " << q << " should carry exactly one channel: " << side.dump();
        EXPECT_GT(side["queues"][q][1].get<uint64_t>(), 10u) << "queue " << q << " tx: " << side.dump();
        if (rx_per_queue) {
            EXPECT_GT(side["queues"][q][0].get<uint64_t>(), 10u) << "queue " << q << " rx: " << side.dump();
        }
    }
}

}  // namespace

TEST_F(DpdkPair, MemifBulkTransferFourChannelsEveryByteVerified) {
    const uint64_t bytes = 256ull << 20;
    auto r = transfer(memif("server"), memif("client"), 4, bytes, 60);
    expect_exact(r, bytes);
    std::cout << "memif: " << r.client.dump() << "\n";
}

TEST_F(DpdkPair, MemifWithInjectedLossStillExact) {
    const uint64_t bytes = 32ull << 20;
    auto r = transfer(memif("server"), memif("client") + ",rmig.loss=0.05", 2, bytes, 60);
    expect_exact(r, bytes);
    EXPECT_GT(r.client.value("injected_drops", 0ull), 0u);
    // Every dropped frame had to be sent again for the bytes to arrive.
    EXPECT_GE(r.client.value("retransmits", 0ull), r.client.value("injected_drops", 0ull));
    std::cout << "memif 5% loss: " << r.client.dump() << "\n";
}

TEST_F(DpdkPair, MemifFourQueuePairsFourChannelsWithLossExact) {
    const uint64_t bytes = 128ull << 20;
    auto r = transfer(memif("server") + ",rmig.queues=4",
                      memif("client") + ",rmig.queues=4,rmig.loss=0.02", 4, bytes, 90);
    expect_exact(r, bytes);
    EXPECT_GT(r.client.value("injected_drops", 0ull), 0u);
    EXPECT_GE(r.client.value("retransmits", 0ull), r.client.value("injected_drops", 0ull));
    // memif pairs queue i with the peer's queue i: every frame lands on its
    // channel's queue, none is handed across.
    expect_queue_per_channel(r.client, 4, true);
    expect_queue_per_channel(r.server, 4, true);
    for (auto& q : r.server["queues"]) EXPECT_EQ(q[2].get<uint64_t>(), 0u) << r.server.dump();
    std::cout << "memif 4 queues 2% loss: " << r.client.dump() << "\n  server: " << r.server.dump() << "\n";
}

TEST_F(DpdkPair, MemifZeroCopySendFromRegisteredMemoryExact) {
    const uint64_t bytes = 128ull << 20;
    client_extra = {"--zero-copy", "1"};
    auto r = transfer(memif("server"), memif("client"), 2, bytes, 60);
    expect_exact(r, bytes);
    std::cout << "memif zero-copy: " << r.client.dump() << "\n";
}

class DpdkAfPacket : public DpdkPair {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_NET_ADMIN) to create network namespaces";
        ns = std::make_unique<NetnsPair>();
        if (!ns->ok) GTEST_SKIP() << "cannot create network namespaces and a veth pair here";
    }
    std::string uri(const std::string& iface) const { return "dpdk:net_af_packet0,iface=" + iface; }
    std::unique_ptr<NetnsPair> ns;
};

TEST_F(DpdkAfPacket, VethBetweenNamespacesRetransmitsAndDeliversExactly) {
    const uint64_t bytes = 128ull << 20;
    auto r = transfer(uri(ns->va), uri(ns->vb), 2, bytes, 60, ns->a, ns->b);
    expect_exact(r, bytes);
    // af_packet over veth drops frames under load: repairs must have happened.
    EXPECT_GT(r.client.value("retransmits", 0ull), 0u) << r.client.dump();
    std::cout << "af_packet: " << r.client.dump() << "\n";
}

TEST_F(DpdkAfPacket, InjectedLossOnePercentAndJumboFrames) {
    const uint64_t bytes = 64ull << 20;
    std::string jumbo = ",framesz=10240,blocksz=20480,rmig.mtu=9000";
    auto r = transfer(uri(ns->va) + jumbo, uri(ns->vb) + jumbo + ",rmig.loss=0.01", 2, bytes, 60,
                      ns->a, ns->b);
    expect_exact(r, bytes);
    EXPECT_GT(r.client.value("injected_drops", 0ull), 0u);
    EXPECT_GE(r.client.value("retransmits", 0ull), r.client.value("injected_drops", 0ull));
    // 9000-byte frames: 64 MiB in well under 10k segments.
    EXPECT_LT(r.client.value("segments", 0ull), 10000u) << r.client.dump();
    std::cout << "af_packet jumbo 1% loss: " << r.client.dump() << "\n";
}

TEST_F(DpdkAfPacket, FourQueuePairsFourChannelsWithLossExact) {
    const uint64_t bytes = 64ull << 20;
    // rmig.queues=4 adds qpairs=4 to the af_packet devargs: four sockets in a
    // kernel fanout group, which chooses the rx queue of each frame.
    auto r = transfer(uri(ns->va) + ",rmig.queues=4", uri(ns->vb) + ",rmig.queues=4,rmig.loss=0.01",
                      4, bytes, 90, ns->a, ns->b);
    expect_exact(r, bytes);
    EXPECT_GT(r.client.value("injected_drops", 0ull), 0u);
    EXPECT_GE(r.client.value("retransmits", 0ull), r.client.value("injected_drops", 0ull));
    expect_queue_per_channel(r.client, 4, false);
    expect_queue_per_channel(r.server, 4, false);
    uint64_t rx = 0;
    for (auto& q : r.server["queues"]) rx += q[0].get<uint64_t>();
    EXPECT_GT(rx, bytes / 1500) << r.server.dump();
    std::cout << "af_packet 4 queues 1% loss: " << r.client.dump() << "\n  server: " << r.server.dump() << "\n";
}

TEST_F(DpdkAfPacket, ZeroCopyWithInjectedLossRetransmitsExternalBuffersExactly) {
    const uint64_t bytes = 64ull << 20;
    client_extra = {"--zero-copy", "1"};
    auto r = transfer(uri(ns->va), uri(ns->vb) + ",rmig.loss=0.02", 2, bytes, 60, ns->a, ns->b);
    expect_exact(r, bytes);
    EXPECT_GT(r.client.value("injected_drops", 0ull), 0u);
    EXPECT_GE(r.client.value("retransmits", 0ull), r.client.value("injected_drops", 0ull));
    std::cout << "af_packet zero-copy 2% loss: " << r.client.dump() << "\n";
}

TEST_F(DpdkAfPacket, DeadPeerIsDetectedWithinTheTimeout) {
    std::string so = dir.path() + "/server.out", co = dir.path() + "/client.out";
    Process server(peer("server", uri(ns->va), 1, 64ull << 30, 30, ns->a), {so, "=stdout"});
    ASSERT_TRUE(wait_for_text(so, "listening", 20s, server)) << slurp(so);
    Process client(peer("client", uri(ns->vb), 1, 64ull << 30, 30, ns->b), {co, "=stdout"});
    // Killed once the session is up and data flows: before that, the client
    // rightly reports "no rmig listener answered" instead (seen on a loaded machine).
    ASSERT_TRUE(wait_for_text(co, "\"connected\"", 20s, client)) << slurp(co);
    std::this_thread::sleep_for(300ms);
    server.signal(SIGKILL);
    auto t0 = std::chrono::steady_clock::now();
    auto rc = client.wait_for(15s);
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_TRUE(rc.has_value()) << "client did not notice its peer died";
    EXPECT_NE(*rc, 0);
    EXPECT_LT(took, 12s);  // dead-peer timeout is 5 s in the peer tool
    EXPECT_NE(slurp(co).find("peer silent"), std::string::npos) << slurp(co);
}

TEST_F(DpdkPair, UnknownPortIsAClearError) {
    std::string co = dir.path() + "/client.out";
    Process client(peer("client", "dpdk:net_nosuchdriver0", 1, 1, 5), {co, "=stdout"});
    auto rc = client.wait_for(20s);
    ASSERT_TRUE(rc.has_value());
    EXPECT_NE(*rc, 0);
    EXPECT_NE(slurp(co).find("dpdk port 'net_nosuchdriver0' not found"), std::string::npos) << slurp(co);
}

TEST_F(DpdkPair, EalInitFailureSaysWhatToDo) {
    std::string co = dir.path() + "/client.out";
    auto argv = peer("client", memif("client"), 1, 1, 5);
    argv.insert(argv.begin(), {"env", "RMIG_DPDK_EAL_ARGS=--no-huge --not-an-eal-option"});
    Process client(argv, {co, "=stdout"});
    auto rc = client.wait_for(20s);
    ASSERT_TRUE(rc.has_value());
    EXPECT_NE(*rc, 0);
    std::string out = slurp(co);
    EXPECT_NE(out.find("DPDK EAL initialisation failed"), std::string::npos) << out;
    EXPECT_NE(out.find("nr_hugepages"), std::string::npos) << out;
}

TEST_F(DpdkPair, MemifClientWithoutServerIsAClearError) {
    std::string co = dir.path() + "/client.out";
    Process client(peer("client", memif("client"), 1, 1, 2), {co, "=stdout"});
    auto rc = client.wait_for(20s);
    ASSERT_TRUE(rc.has_value());
    EXPECT_NE(*rc, 0);
    EXPECT_NE(slurp(co).find("start the listening side first"), std::string::npos) << slurp(co);
}
