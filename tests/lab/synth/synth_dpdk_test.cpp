// Memory mode over dpdk: rmig-synth source and dest as two processes over a
// memif pair (no hugepages), writers dirtying the guest throughout, every
// destination page checked against the source's hash list. With
// rmig.queues=3 the control channel and both workers' channels each get a
// queue pair of their own.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/process.hpp"
#include "common/temp_dir.hpp"

using namespace rmig;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr const char* kSynth = RMIG_SYNTH_PATH;
constexpr uint64_t kPages = (256u << 20) / 4096;

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

struct Outcome {
    int source_exit = -1, dest_exit = -1;
    json source, dest;
    std::string source_log, dest_log;
};

// memif sockets are per test directory, so parallel tests do not meet.
Outcome migrate_over_memif(const std::string& suffix, const std::vector<std::string>& source_args) {
    TempDir dir("synth-dpdk-test");
    const std::string port = dir.path() + "/port", sock = dir.path() + "/memif.sock";
    Outcome o;
    Process dest({kSynth, "dest", "--size", "256M", "--listen",
                  "dpdk:net_memif0,role=server,socket=" + sock + suffix, "--port-file", port,
                  "--timeout", "80", "--json"},
                 {dir.path() + "/dest.json", dir.path() + "/dest.log"});
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!std::ifstream(port) && std::chrono::steady_clock::now() < deadline && dest.running())
        std::this_thread::sleep_for(20ms);
    if (!std::ifstream(port)) {
        ADD_FAILURE() << "destination never listened: " << slurp(dir.path() + "/dest.log");
        return o;
    }
    std::vector<std::string> argv = {kSynth, "source", "--size", "256M", "--to",
                                     "dpdk:net_memif0,role=client,socket=" + sock + suffix,
                                     "--json", "--max-seconds", "60"};
    argv.insert(argv.end(), source_args.begin(), source_args.end());
    Process source(argv, {dir.path() + "/source.json", dir.path() + "/source.log"});
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

TEST(SynthOverDpdk, MemifOneQueueLz4WithInjectedLoss) {
    Outcome o = migrate_over_memif(",rmig.loss=0.01", {"--pattern", "uniform", "--dirty-rate", "32M",
                                                       "--workers", "2", "--codec", "lz4",
                                                       "--downtime-ms", "50"});
    expect_verified(o);
    EXPECT_NE(o.source_log.find("1 queue pair\n"), std::string::npos) << o.source_log;
    // lz4: the receiver must decompress, so pages travel in batches (copied).
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
