// Memory mode over dpdk: rmig-synth source and dest as two processes over a
// memif pair (no hugepages), writers dirtying the guest throughout, every
// destination page checked against the source's hash list. With
// rmig.queues=3 the control channel and both workers' channels each get a
// queue pair of their own.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/process.hpp"
#include "common/temp_dir.hpp"
#include "tests/support/synth_outcome.hpp"
#include "security/policy.hpp"

using namespace rmig;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr const char* kSynth = RMIG_SYNTH_PATH;
constexpr uint64_t kPages = (256u << 20) / 4096;

using test::slurp;
using Outcome = test::SynthOutcome;

int run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// Two network namespaces joined by a veth pair (MTU 9000), removed on every path.
struct NetnsPair {
    NetnsPair() {
        static std::atomic<int> n{0};
        std::string tag = std::to_string(getpid()) + "s" + std::to_string(n++);
        a = "rmigSA" + tag;
        b = "rmigSB" + tag;
        va = "rsa" + tag;
        vb = "rsb" + tag;
        created_a = run("ip netns add " + a) == 0;
        created_b = created_a && run("ip netns add " + b) == 0;
        ok = created_b && run("ip link add " + va + " mtu 9000 type veth peer name " + vb + " mtu 9000") == 0;
        ok = ok && run("ip link set " + va + " netns " + a) == 0 && run("ip link set " + vb + " netns " + b) == 0 &&
             run("ip -n " + a + " link set " + va + " up") == 0 && run("ip -n " + b + " link set " + vb + " up") == 0;
        if (!ok) run("ip link del " + va);
    }
    ~NetnsPair() {
        if (created_a) run("ip netns del " + a);
        if (created_b) run("ip netns del " + b);
    }
    bool ok = false, created_a = false, created_b = false;
    std::string a, b, va, vb;
};

std::vector<std::string> in_netns(const std::string& ns, std::vector<std::string> argv) {
    if (ns.empty()) return argv;
    argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
    return argv;
}

// memif sockets are per test directory, so parallel tests do not meet. With
// namespaces given, the URIs are af_packet ones and each side runs in its own.
// Both sides authenticate with a pre-shared key made here. Pages written
// zero-copy from guest memory cannot be sealed, so those cases run
// authenticated only (--no-encrypt); `encrypt` seals every frame.
enum class Sealing { auth_only, encrypt };

Outcome migrate_over(const std::string& dest_uri, const std::string& source_uri,
                     std::vector<std::string> source_args, const std::string& dest_ns = "",
                     const std::string& source_ns = "", Sealing sealing = Sealing::auth_only) {
    TempDir dir("synth-dpdk-test");
    const std::string port = dir.path() + "/port";
    const std::string key = dir.path() + "/key.psk";
    security::write_random_psk_file(key);
    std::vector<std::string> sec = {"--psk-file", key};
    if (sealing == Sealing::auth_only) sec.push_back("--no-encrypt");
    source_args.insert(source_args.end(), sec.begin(), sec.end());
    Outcome o;
    std::vector<std::string> dest_argv = {kSynth, "dest", "--size", "256M", "--listen", dest_uri, "--port-file", port,
                                          "--timeout", "80", "--json"};
    dest_argv.insert(dest_argv.end(), sec.begin(), sec.end());
    Process dest(in_netns(dest_ns, dest_argv), {dir.path() + "/dest.json", dir.path() + "/dest.log"});
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!std::ifstream(port) && std::chrono::steady_clock::now() < deadline && dest.running())
        std::this_thread::sleep_for(20ms);
    if (!std::ifstream(port)) {
        ADD_FAILURE() << "destination never listened: " << slurp(dir.path() + "/dest.log");
        return o;
    }
    std::vector<std::string> argv = {kSynth, "source", "--size", "256M", "--to", source_uri,
                                     "--json", "--max-seconds", "60"};
    argv.insert(argv.end(), source_args.begin(), source_args.end());
    Process source(in_netns(source_ns, argv), {dir.path() + "/source.json", dir.path() + "/source.log"});
    o.source_exit = source.wait_for(90s).value_or(-1);
    o.dest_exit = dest.wait_for(30s).value_or(-1);
    o.source_log = slurp(dir.path() + "/source.log");
    o.dest_log = slurp(dir.path() + "/dest.log");
    try {
        o.source = json::parse(slurp(dir.path() + "/source.json"));
        o.dest = json::parse(slurp(dir.path() + "/dest.json"));
    } catch (const std::exception& e) {
        ADD_FAILURE() << "bad JSON report: " << e.what() << "\nsource log:\n" << o.source_log
                      << "\ndest log:\n" << o.dest_log;
    }
    return o;
}

Outcome migrate_over_memif(const std::string& suffix, const std::vector<std::string>& source_args,
                           Sealing sealing = Sealing::auth_only) {
    TempDir sockdir("synth-dpdk-sock");
    const std::string sock = sockdir.path() + "/memif.sock";
    return migrate_over("dpdk:net_memif0,role=server,socket=" + sock + suffix,
                        "dpdk:net_memif0,role=client,socket=" + sock + suffix, source_args, "", "", sealing);
}

void expect_verified(const Outcome& o) {
    ASSERT_EQ(o.source_exit, 0) << o.source.dump(1) << "\n" << o.source_log << "\n" << o.dest_log;
    ASSERT_EQ(o.dest_exit, 0) << o.dest.dump(1) << "\n" << o.dest_log;
    EXPECT_TRUE(o.source["ok"].get<bool>());
    EXPECT_TRUE(o.dest["ok"].get<bool>());
    EXPECT_EQ(o.dest["verified"].get<uint64_t>(), kPages);
    EXPECT_EQ(o.dest["mismatches"].get<uint64_t>(), 0u);
    EXPECT_GT(o.dest["source_writes"].get<uint64_t>(), 0u);
    EXPECT_GE(o.source["rounds"].get<unsigned>(), 2u);  // the writers dirtied pages after round 0
    EXPECT_EQ(o.source["rounds"], o.dest["rounds"]);
    EXPECT_EQ(o.source["pages_sent"], o.dest["pages_placed"]);
    EXPECT_GT(o.source["pages_sent"].get<uint64_t>(), kPages);
    EXPECT_NE(o.source_log.find("round 0: sent 65536 pages"), std::string::npos) << o.source_log;
}

}  // namespace

TEST(SynthOverDpdk, MemifThreeQueuePairsTwoWorkersUnderWrites) {
    Outcome o = migrate_over_memif(",rmig.queues=3", {"--pattern", "hot", "--hot-fraction", "0.05",
                                                      "--dirty-rate", "64M", "--workers", "2",
                                                      "--downtime-ms", "50"});
    expect_verified(o);
    EXPECT_NE(o.source_log.find("3 queue pairs"), std::string::npos) << o.source_log;
    EXPECT_NE(o.dest_log.find("3 queue pairs"), std::string::npos) << o.dest_log;
    // No codec: pages went as remote writes attached from the registered guest memory.
    EXPECT_NE(o.source_log.find("sent zero-copy from registered memory"), std::string::npos)
        << o.source_log;
    std::cout << "source: " << o.source.dump() << "\n";
}

TEST(SynthOverDpdk, MemifOneQueueLz4EncryptedWithInjectedLoss) {
    Outcome o = migrate_over_memif(",rmig.loss=0.01", {"--pattern", "uniform", "--dirty-rate", "32M",
                                                       "--workers", "2", "--codec", "lz4",
                                                       "--downtime-ms", "50"},
                                   Sealing::encrypt);
    expect_verified(o);
    EXPECT_NE(o.source_log.find("1 queue pair\n"), std::string::npos) << o.source_log;
    // lz4 (and sealing): the receiver must decompress, so pages travel in batches (copied).
    EXPECT_EQ(o.source_log.find("sent zero-copy"), std::string::npos) << o.source_log;
    std::cout << "source: " << o.source.dump() << "\n";
}

// Remote writes under loss while the writers run: retransmitted segments read
// the guest page again (it may have changed since); the page was dirtied, so a
// later round resends it and the hash list still matches everywhere.
TEST(SynthOverDpdk, MemifZeroCopyPagesWithInjectedLossUnderWrites) {
    Outcome o = migrate_over_memif(",rmig.loss=0.02", {"--pattern", "uniform", "--dirty-rate", "128M",
                                                       "--workers", "2", "--downtime-ms", "50"});
    expect_verified(o);
    EXPECT_NE(o.source_log.find("sent zero-copy from registered memory"), std::string::npos)
        << o.source_log;
    std::cout << "source: " << o.source.dump() << "\n";
}

// af_packet on a veth between two network namespaces: the kernel drops frames
// under load (dpdk_transport_test sees thousands of repairs per 128 MiB), so
// attached guest pages get retransmitted by a real link's losses while the
// writers keep changing them. (rmig-synth does not report transport counters.)
TEST(SynthOverDpdk, AfPacketZeroCopyPagesUnderWrites) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_NET_ADMIN) to create network namespaces";
    NetnsPair ns;
    if (!ns.ok) GTEST_SKIP() << "cannot create network namespaces and a veth pair here";
    Outcome o = migrate_over("dpdk:net_af_packet0,iface=" + ns.va, "dpdk:net_af_packet0,iface=" + ns.vb,
                             {"--pattern", "hot", "--hot-fraction", "0.05", "--dirty-rate", "64M",
                              "--workers", "2", "--downtime-ms", "50"},
                             ns.a, ns.b);
    expect_verified(o);
    EXPECT_NE(o.source_log.find("sent zero-copy from registered memory"), std::string::npos)
        << o.source_log;
    std::cout << "source: " << o.source.dump() << "\n";
}
