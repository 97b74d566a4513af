// Listeners under a flood (docs/security.md): rmig-synth dest (the same
// security::listen as `rmig receive`) is flooded by rmig-flood with
// connections that never finish their handshake, while a real memory-mode
// migration (rmig-synth source, a writing guest) is about to start or is
// running. Asserted: the migration completes and every page verifies, the
// listener's memory stays bounded during the flood (VmRSS sampled), the
// listener really dropped strangers (the flooder saw it) and said so in a
// rate-limited log.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#ifdef RMIG_HAVE_RDMA
#include <infiniband/verbs.h>
#endif

#include "common/error.hpp"
#include "common/process.hpp"
#include "common/temp_dir.hpp"
#include "security/policy.hpp"
#include "tests/support/synth_outcome.hpp"

using namespace rmig;
using namespace std::chrono_literals;
using nlohmann::json;
using test::slurp;

namespace {

constexpr const char* kSynth = RMIG_SYNTH_PATH;
constexpr const char* kFlood = RMIG_FLOOD_PATH;
constexpr uint64_t kPages = (256u << 20) / 4096;

// Resident memory of `pid` in KiB, 0 if gone.
uint64_t rss_kib(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
    return 0;
}

size_t count_lines(const std::string& text, const std::string& what) {
    std::istringstream in(text);
    size_t n = 0;
    for (std::string l; std::getline(in, l);) n += l.find(what) != std::string::npos;
    return n;
}

struct FloodCase {
    std::string kind;
    std::string from;  // "" = the source's own address
    int connections = 1000;
    bool mid_migration = false;  // flood starts once the source runs, not before
};

std::string name_of(const testing::TestParamInfo<FloodCase>& p) {
    std::string n = p.param.kind + (p.param.from.empty() ? "_same_address" : "_other_host") +
                    (p.param.mid_migration ? "_mid_migration" : "_before_start");
    for (auto& c : n)
        if (c == '-') c = '_';
    return n;
}

class ListenerFlood : public testing::TestWithParam<FloodCase> {};

TEST_P(ListenerFlood, MigrationCompletesVerifiedAndTheListenerStaysBounded) {
    const FloodCase& c = GetParam();
    TempDir dir("listener-flood-test");
    const std::string d = dir.path();
    const std::string key = d + "/key.psk", port = d + "/port", ready = d + "/flood.ready";
    security::write_random_psk_file(key);

    Process dest({kSynth, "dest", "--size", "256M", "--listen", "tcp:127.0.0.1:0", "--port-file", port, "--timeout",
                  "90", "--json", "--psk-file", key},
                 {d + "/dest.json", d + "/dest.log"});
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!std::ifstream(port) && std::chrono::steady_clock::now() < deadline && dest.running())
        std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(std::ifstream(port)) << slurp(d + "/dest.log");
    std::string uri = slurp(port);
    while (!uri.empty() && (uri.back() == '\n' || uri.back() == ' ')) uri.pop_back();
    uint64_t rss_idle = rss_kib(dest.pid());

    std::vector<std::string> flood_argv = {kFlood,       "--to",      uri, "--kind", c.kind, "--connections",
                                           std::to_string(c.connections), "--seconds", "60", "--ready-file", ready,
                                           "--json"};
    if (!c.from.empty()) flood_argv.insert(flood_argv.end(), {"--from", c.from});
    std::vector<std::string> source_argv = {kSynth,  "source", "--size", "256M", "--to", uri, "--json",
                                            "--dirty-rate", "40M", "--max-seconds", "60", "--psk-file", key};
    Process flood, source;
    uint64_t rss_flooded = 0;
    auto start_flood = [&] {
        flood = Process(flood_argv, {d + "/flood.json", d + "/flood.log"});
        auto until = std::chrono::steady_clock::now() + 30s;
        while (!std::ifstream(ready) && std::chrono::steady_clock::now() < until && flood.running())
            std::this_thread::sleep_for(20ms);
        ASSERT_TRUE(std::ifstream(ready)) << slurp(d + "/flood.log");
    };
    if (c.mid_migration) {
        source = Process(source_argv, {d + "/source.json", d + "/source.log"});
        start_flood();
    } else {
        start_flood();
        std::this_thread::sleep_for(1s);  // the flood at its full weight
        rss_flooded = rss_kib(dest.pid());
        source = Process(source_argv, {d + "/source.json", d + "/source.log"});
    }
    std::optional<int> source_exit = source.wait_for(90s);
    int dest_exit = dest.wait_for(30s).value_or(-1);
    bool flood_alive = flood.running();
    flood.signal(SIGTERM);
    flood.wait_for(5s);
    const std::string source_log = slurp(d + "/source.log"), dest_log = slurp(d + "/dest.log");
    ASSERT_EQ(source_exit.value_or(-1), 0) << slurp(d + "/source.json") << "\n" << source_log << "\n--- dest:\n"
                                           << dest_log;
    ASSERT_EQ(dest_exit, 0) << dest_log;
    auto src = json::parse(slurp(d + "/source.json"));
    auto dst = json::parse(slurp(d + "/dest.json"));
    EXPECT_TRUE(src["ok"].get<bool>());
    EXPECT_EQ(dst["verified"].get<uint64_t>(), kPages);
    EXPECT_EQ(dst["mismatches"].get<uint64_t>(), 0u);
    EXPECT_GT(dst["source_writes"].get<uint64_t>(), 0u);
    EXPECT_TRUE(flood_alive) << "the flood must still run when the migration ends:\n" << slurp(d + "/flood.log");
    auto fl = json::parse(slurp(d + "/flood.json"));
    std::cout << "flood: " << fl.dump() << "\n";
    if (c.kind == "wrong-key")
        EXPECT_GT(fl["refused_auth"].get<uint64_t>(), 0u);
    else
        EXPECT_GT(fl["dropped_by_listener"].get<uint64_t>(), 0u) << "the listener pushed strangers out";

    // Bounded: the listener holds at most its admission bounds of strangers
    // (256), with a worker each while they authenticate; 1000 held
    // connections must not show in its memory.
    if (!c.mid_migration) {
        std::cout << "listener RSS: " << rss_idle << " KiB idle, " << rss_flooded << " KiB under the flood\n";
        EXPECT_LT(rss_flooded, rss_idle + 32 * 1024);
    }
    // The strangers were really turned away, and the log said so a few times, not per connection.
    size_t logged = count_lines(dest_log, "warning");
    EXPECT_GT(logged, 0u) << dest_log;
    EXPECT_LT(logged, 60u) << "the listener's warnings are rate-limited";
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, ListenerFlood,
    // Not here: stalled-auth from the source's own address at full rate, a
    // known limit (docs/security.md, "Listeners under a flood").
    testing::Values(FloodCase{"partial-hello", "", 1000, false}, FloodCase{"silent", "127.0.0.2", 1000, false},
                    FloodCase{"stalled-auth", "127.0.0.2", 1000, false},
                    FloodCase{"stalled-auth", "127.0.0.2", 1000, true}, FloodCase{"wrong-key", "", 8, false},
                    FloodCase{"partial-hello", "", 1000, true}),
    name_of);

// Over rdma, inside the Soft-RoCE VM (ctest -R listener_flood_over_rdma_in_softroce_vm):
// connect requests that are never established hold the listener's workers
// until newer ones push them out; the real source (same address) migrates a
// 16 MiB guest (the VM's CPU is emulated), every page verified.
TEST(ListenerFloodRdma, ConnectRequestsThatNeverCompleteDoNotBlockTheSource) {
    std::string addr;
#ifdef RMIG_HAVE_RDMA
    int devices = 0;
    if (ibv_device** l = ibv_get_device_list(&devices)) ibv_free_device_list(l);
    if (devices > 0) addr = std::getenv("RMIG_RDMA_ADDR") ? std::getenv("RMIG_RDMA_ADDR") : "10.11.12.1";
#endif
    if (addr.empty())
        GTEST_SKIP() << "no RDMA device on this machine (or built without rdma); this case runs inside the "
                        "Soft-RoCE VM (ctest -R listener_flood_over_rdma_in_softroce_vm)";
    TempDir dir("listener-flood-rdma");
    const std::string d = dir.path();
    const std::string key = d + "/key.psk", port = d + "/port", ready = d + "/flood.ready";
    security::write_random_psk_file(key);
    Process dest({kSynth, "dest", "--size", "16M", "--listen", cat("rdma:", addr, ":0"), "--port-file", port,
                  "--timeout", "150", "--json", "--psk-file", key},
                 {d + "/dest.json", d + "/dest.log"});
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!std::ifstream(port) && std::chrono::steady_clock::now() < deadline && dest.running())
        std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(std::ifstream(port)) << slurp(d + "/dest.log");
    std::string uri = slurp(port);
    while (!uri.empty() && (uri.back() == '\n' || uri.back() == ' ')) uri.pop_back();
    Process flood({kFlood, "--to", uri, "--kind", "stalled-auth", "--connections", "80", "--seconds", "120",
                   "--ready-file", ready, "--json"},
                  {d + "/flood.json", d + "/flood.log"});
    auto until = std::chrono::steady_clock::now() + 90s;
    while (!std::ifstream(ready) && std::chrono::steady_clock::now() < until && flood.running())
        std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(std::ifstream(ready)) << slurp(d + "/flood.log");
    Process source({kSynth, "source", "--size", "16M", "--to", uri, "--json", "--dirty-rate", "1M", "--max-seconds",
                    "100", "--psk-file", key},
                   {d + "/source.json", d + "/source.log"});
    int source_exit = source.wait_for(120s).value_or(-1);
    int dest_exit = dest.wait_for(30s).value_or(-1);
    bool flood_alive = flood.running();
    flood.signal(SIGTERM);
    flood.wait_for(10s);
    ASSERT_EQ(source_exit, 0) << slurp(d + "/source.json") << "\n" << slurp(d + "/source.log") << "\n--- dest:\n"
                              << slurp(d + "/dest.log") << "\n--- flood:\n" << slurp(d + "/flood.log");
    ASSERT_EQ(dest_exit, 0) << slurp(d + "/dest.log");
    auto dst = json::parse(slurp(d + "/dest.json"));
    EXPECT_EQ(dst["verified"].get<uint64_t>(), (16u << 20) / 4096);
    EXPECT_EQ(dst["mismatches"].get<uint64_t>(), 0u);
    EXPECT_TRUE(flood_alive) << slurp(d + "/flood.log");
    auto fl = json::parse(slurp(d + "/flood.json"));
    std::cout << "flood: " << fl.dump() << "\n";
    EXPECT_GE(fl["opened"].get<uint64_t>(), 80u);
}

}  // namespace
