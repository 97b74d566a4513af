// rmig-synth source and dest as two processes over tcp loopback: a 256 MiB
// guest migrated while its writers run, in every write pattern and with both
// dirty logs, every destination page checked against the source's hash list
// and the source's report checked for the convergence policy's decisions,
// authenticated with a pre-shared key and encrypted (one case plaintext,
// asked for on loopback); a destination whose size differs, which both sides
// must refuse; a source with another key, refused; SIGINT cancelling the
// source mid-round; the command-line policy. Post-copy: forced after round 1
// with the writers busy, and switched by itself when pre-copy cannot fit the
// budget; the destination's guest readers run it from the switch, checking
// every page they touch, and every page is verified at the end; and the link
// going down mid push (through lab::FaultProxy) and coming back, resumed.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/process.hpp"
#include "common/temp_dir.hpp"
#include "lab/fault_proxy.hpp"
#include "tests/support/rdma_uri.hpp"
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

// Security options for both sides: "psk" (a key file made here), "other-psk"
// (a second, different key), or "plaintext".
std::vector<std::string> security_args(const TempDir& dir, const std::string& kind) {
    if (kind == "plaintext") return {"--insecure-plaintext"};
    std::string key = dir.path() + "/" + kind + ".psk";
    if (!std::ifstream(key)) security::write_random_psk_file(key);
    return {"--psk-file", key};
}

// The link between the two processes through a lab::FaultProxy at `rate`
// bytes/s; `fault` runs on a thread of its own meanwhile, with the proxy and
// the destination's log file.
struct Through {
    uint64_t rate = 0;
    std::function<void(lab::FaultProxy&, const std::string& dest_log)> fault;
};

// Starts the destination, waits for its address, runs the source, collects both JSON reports.
Outcome migrate(const std::vector<std::string>& source_args, const std::string& dest_size = "256M",
                const std::string& dest_security = "psk", const std::string& source_security = "psk",
                const std::string& dest_timeout = "50", const std::vector<std::string>& dest_args = {},
                const Through* through = nullptr, const std::string& listen = "tcp:127.0.0.1:0") {
    TempDir dir("synth-test");
    const std::string port = dir.path() + "/port";
    Outcome o;
    std::vector<std::string> dargv = {kSynth,   "dest", "--size",   dest_size, "--listen", listen,
                                      "--port-file", port, "--timeout", dest_timeout, "--json"};
    for (auto& a : security_args(dir, dest_security)) dargv.push_back(a);
    dargv.insert(dargv.end(), dest_args.begin(), dest_args.end());
    Process dest(dargv, {dir.path() + "/dest.json", dir.path() + "/dest.log"});
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!std::ifstream(port) && std::chrono::steady_clock::now() < deadline && dest.running())
        std::this_thread::sleep_for(20ms);
    std::string uri = slurp(port);
    if (uri.empty()) {
        ADD_FAILURE() << "destination never listened: " << slurp(dir.path() + "/dest.log");
        return o;
    }
    uri.erase(uri.find_last_not_of("\n") + 1);
    std::unique_ptr<lab::FaultProxy> proxy;
    std::jthread faulter;
    if (through) {
        proxy = std::make_unique<lab::FaultProxy>(uri);
        proxy->limit_rate(through->rate);
        uri = proxy->address();
        faulter = std::jthread([&, log = dir.path() + "/dest.log"] { through->fault(*proxy, log); });
    }
    std::vector<std::string> argv = {kSynth, "source", "--size", "256M", "--to", uri, "--json", "--max-seconds", "40"};
    argv.insert(argv.end(), source_args.begin(), source_args.end());
    for (auto& a : security_args(dir, source_security)) argv.push_back(a);
    Process source(argv, {dir.path() + "/source.json", dir.path() + "/source.log"});
    o.source_exit = source.wait_for(50s).value_or(-1);
    o.dest_exit = dest.wait_for(20s).value_or(-1);
    o.source_log = slurp(dir.path() + "/source.log");
    o.dest_log = slurp(dir.path() + "/dest.log");
    try {
        o.source = json::parse(slurp(dir.path() + "/source.json"));
        o.dest = json::parse(slurp(dir.path() + "/dest.json"));
    } catch (const std::exception& e) {
        ADD_FAILURE() << "bad JSON report: " << e.what() << "\nsource log:\n" << o.source_log << "\ndest log:\n"
                      << o.dest_log;
    }
    return o;
}

void expect_verified(const Outcome& o) {
    ASSERT_EQ(o.source_exit, 0) << o.source.dump(1) << "\n" << o.source_log;
    ASSERT_EQ(o.dest_exit, 0) << o.dest.dump(1) << "\n" << o.dest_log;
    EXPECT_TRUE(o.source["ok"].get<bool>());
    EXPECT_TRUE(o.dest["ok"].get<bool>());
    EXPECT_EQ(o.dest["verified"].get<uint64_t>(), kPages);
    EXPECT_EQ(o.dest["mismatches"].get<uint64_t>(), 0u);
    // Not a trivially zero guest: about a quarter of the pages start zero, writers fill some.
    EXPECT_GT(o.dest["zero_pages"].get<uint64_t>(), kPages / 10);
    EXPECT_LT(o.dest["zero_pages"].get<uint64_t>(), kPages / 2);
    // The writers were running throughout, so something was dirtied after round 0.
    EXPECT_GT(o.dest["source_writes"].get<uint64_t>(), 0u);
    EXPECT_GE(o.source["rounds"].get<unsigned>(), 2u);
    EXPECT_EQ(o.source["rounds"], o.dest["rounds"]);
    EXPECT_EQ(o.source["pages_sent"], o.dest["pages_placed"]);
    EXPECT_GT(o.source["pages_sent"].get<uint64_t>(), kPages);
    EXPECT_EQ(o.source["round_log"].size() + 1, o.source["rounds"].get<size_t>());
    EXPECT_EQ(o.source["round_log"][0]["pages_sent"].get<uint64_t>(), kPages);
    EXPECT_EQ(o.source["session"], o.dest["session"]);
    EXPECT_NE(o.source_log.find("round 0: sent 65536 pages"), std::string::npos) << o.source_log;
    // The convergence policy's decisions: one per pre-copy round, in order,
    // each with a reason, the last a switchover; one progress line each.
    const json& decisions = o.source["decisions"];
    ASSERT_TRUE(decisions.is_array() && !decisions.empty()) << o.source.dump(1);
    ASSERT_EQ(decisions.size(), o.source["round_log"].size()) << decisions.dump(1);
    for (size_t i = 0; i < decisions.size(); ++i) {
        EXPECT_EQ(decisions[i]["round"].get<size_t>(), i) << decisions.dump(1);
        EXPECT_FALSE(decisions[i]["reason"].get<std::string>().empty()) << decisions.dump(1);
        EXPECT_EQ(decisions[i]["remaining_bytes"].get<uint64_t>(),
                  decisions[i]["remaining_pages"].get<uint64_t>() * 4096);
    }
    EXPECT_EQ(decisions.back()["action"], "switchover") << decisions.dump(1);
    EXPECT_TRUE(decisions.back()["converging"].get<bool>()) << decisions.dump(1);
    EXPECT_EQ(decisions.back()["forecast_seconds"], 0.0) << decisions.dump(1);
    EXPECT_NE(o.source_log.find("round 0 decision: "), std::string::npos) << o.source_log;
}

// A migration that switched to post-copy: both sides say so and agree on the
// pages pending; the destination's readers ran the guest (faulting on pages
// not there yet) and read only the source's pages; every page verified.
void expect_postcopy_verified(const Outcome& o) {
    ASSERT_EQ(o.source_exit, 0) << o.source.dump(1) << "\n" << o.source_log << "\n" << o.dest_log;
    ASSERT_EQ(o.dest_exit, 0) << o.dest.dump(1) << "\n" << o.dest_log;
    EXPECT_TRUE(o.source["ok"].get<bool>());
    EXPECT_TRUE(o.dest["ok"].get<bool>());
    EXPECT_EQ(o.dest["verified"].get<uint64_t>(), kPages);
    EXPECT_EQ(o.dest["mismatches"].get<uint64_t>(), 0u);
    EXPECT_EQ(o.source["hash_list_mismatches"].get<int64_t>(), 0);
    EXPECT_GT(o.dest["source_writes"].get<uint64_t>(), 0u);
    EXPECT_EQ(o.source["session"], o.dest["session"]);
    const json& sp = o.source["postcopy"];
    const json& dp = o.dest["postcopy"];
    ASSERT_TRUE(sp.is_object() && dp.is_object()) << o.source.dump(1) << o.dest.dump(1);
    EXPECT_TRUE(sp["enabled"].get<bool>());
    ASSERT_TRUE(sp["switched"].get<bool>()) << sp.dump(1) << "\n" << o.source_log;
    EXPECT_TRUE(dp["switched"].get<bool>()) << dp.dump(1);
    EXPECT_FALSE(sp["reason"].get<std::string>().empty());
    const uint64_t pending = sp["pending_pages"].get<uint64_t>();
    EXPECT_GT(pending, 0u);
    EXPECT_LE(pending, kPages);
    EXPECT_EQ(dp["pending_pages"].get<uint64_t>(), pending);
    EXPECT_LE(sp["served_pages"].get<uint64_t>(), pending);
    EXPECT_GT(dp["faults"].get<uint64_t>(), 0u) << dp.dump(1);
    EXPECT_LE(dp["faults"].get<uint64_t>(), pending);
    EXPECT_LE(dp["fetched_pages"].get<uint64_t>(), dp["faults"].get<uint64_t>());
    EXPECT_GT(dp["fault_p50_us"].get<double>(), 0.0);
    EXPECT_LE(dp["fault_p50_us"].get<double>(), dp["fault_p99_us"].get<double>());
    EXPECT_LE(dp["fault_p99_us"].get<double>(), dp["fault_max_us"].get<double>());
    EXPECT_GT(sp["phase_s"].get<double>(), 0.0);
    EXPECT_GT(dp["phase_s"].get<double>(), 0.0);
    EXPECT_GT(dp["push_rate"].get<double>(), 0.0);
    EXPECT_TRUE(dp["guest_started"].get<bool>());
    EXPECT_EQ(dp["guest_readers"].get<unsigned>(), 2u);
    EXPECT_GT(dp["pages_checked"].get<uint64_t>(), 0u);
    EXPECT_EQ(dp["invalid_pages"].get<uint64_t>(), 0u) << dp.dump(1);
    EXPECT_EQ(dp["failed"], "");
    // Nothing is sent while paused; the guest never resumed on the source.
    EXPECT_EQ(o.source["final_pages"].get<uint64_t>(), 0u);
    EXPECT_FALSE(o.source.contains("after_failure"));
    // The progress lines: the switch on both sides, the summaries.
    EXPECT_NE(o.source_log.find("pausing (post-copy"), std::string::npos) << o.source_log;
    EXPECT_NE(o.source_log.find("pages pending at the switch"), std::string::npos) << o.source_log;
    EXPECT_NE(o.dest_log.find("post-copy: the guest runs here now (2 reader threads)"), std::string::npos)
        << o.dest_log;
    EXPECT_NE(o.dest_log.find("MB/s over the phase"), std::string::npos) << o.dest_log;
    // The policy's decisions up to the switch.
    const json& decisions = o.source["decisions"];
    ASSERT_TRUE(decisions.is_array() && !decisions.empty()) << o.source.dump(1);
}

}  // namespace

TEST(SynthGuest, UniformWithUffdWriteProtect) {
    Outcome o = migrate({"--pattern", "uniform", "--dirty-rate", "64M", "--downtime-ms", "50", "--workers", "2"});
    expect_verified(o);
    EXPECT_EQ(o.source["hash_list_mismatches"].get<int64_t>(), 0);
    EXPECT_EQ(o.source["security"], "pre-shared key 'rmig', encrypted");
    EXPECT_EQ(o.dest["security"], "pre-shared key 'rmig', encrypted");
}

TEST(SynthGuest, HotSetWithCallerBitmapsAndLz4) {
    Outcome o = migrate({"--pattern", "hot", "--hot-fraction", "0.05", "--dirty-rate", "64M", "--dirty-log",
                         "bitmap", "--codec", "lz4", "--downtime-ms", "50"});
    expect_verified(o);
    EXPECT_GT(o.source["compressed_pages"].get<uint64_t>(), kPages / 2);
    EXPECT_LT(o.source["bytes_sent"].get<uint64_t>(), o.source["pages_sent"].get<uint64_t>() * 4096 * 3 / 4);
}

TEST(SynthGuest, SequentialOneWorkerHashedAtPausePlaintextOnLoopback) {
    Outcome o = migrate({"--pattern", "sequential", "--dirty-rate", "32M", "--workers", "1", "--writers", "2",
                         "--hash-at-pause", "--downtime-ms", "100"},
                        "256M", "plaintext", "plaintext");
    expect_verified(o);
    EXPECT_TRUE(o.source["hash_at_pause"].get<bool>());
    EXPECT_EQ(o.source["security"], "plaintext");
}

// The destination turns the stranger away and keeps waiting (until its
// timeout here); the source fails at the handshake, before any page moves.
TEST(SynthGuest, SourceWithAnotherKeyIsRefused) {
    Outcome o = migrate({"--dirty-rate", "16M"}, "256M", "psk", "other-psk", "6");
    EXPECT_EQ(o.source_exit, 1) << o.source_log;
    EXPECT_EQ(o.dest_exit, 1) << o.dest_log;
    EXPECT_NE(o.source["error"].get<std::string>().find("authentication failed"), std::string::npos)
        << o.source["error"];
    EXPECT_EQ(o.source["rounds"].get<unsigned>(), 0u);
    EXPECT_EQ(o.dest["rounds"].get<unsigned>(), 0u);
    EXPECT_EQ(o.dest["verified"].get<uint64_t>(), 0u);
    EXPECT_NE(o.dest_log.find("authentication failed"), std::string::npos) << o.dest_log;
}

// SIGINT to the source mid-round cancels through rmig_source_cancel: the
// source reports the cancel (exit 1, no round completed), the destination
// reports the source's abort (exit 1, nothing verified); both end promptly.
TEST(SynthGuest, SigintCancelsTheMigrationOnBothSides) {
    TempDir dir("synth-cancel");
    const std::string port = dir.path() + "/port";
    auto sec = security_args(dir, "psk");
    std::vector<std::string> dargv = {kSynth, "dest", "--size", "256M", "--listen", "tcp:127.0.0.1:0",
                                      "--port-file", port, "--timeout", "50", "--json"};
    dargv.insert(dargv.end(), sec.begin(), sec.end());
    Process dest(dargv, {dir.path() + "/dest.json", dir.path() + "/dest.log"});
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!std::ifstream(port) && std::chrono::steady_clock::now() < deadline && dest.running())
        std::this_thread::sleep_for(20ms);
    std::string uri = slurp(port);
    ASSERT_FALSE(uri.empty()) << slurp(dir.path() + "/dest.log");
    uri.erase(uri.find_last_not_of("\n") + 1);
    // zstd at level 19 makes round 0 of 256 MiB take seconds here.
    std::vector<std::string> sargv = {kSynth, "source", "--size", "256M", "--to", uri, "--json", "--codec", "zstd",
                                      "--codec-level", "19", "--dirty-rate", "16M"};
    sargv.insert(sargv.end(), sec.begin(), sec.end());
    Process source(sargv, {dir.path() + "/source.json", dir.path() + "/source.log"});
    deadline = std::chrono::steady_clock::now() + 20s;  // the session is up
    while (slurp(dir.path() + "/dest.log").find("authenticated") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline && source.running())
        std::this_thread::sleep_for(10ms);
    std::this_thread::sleep_for(300ms);
    const auto t = std::chrono::steady_clock::now();
    source.signal(SIGINT);
    int source_exit = source.wait_for(10s).value_or(-1);
    int dest_exit = dest.wait_for(10s).value_or(-1);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    std::string slog = slurp(dir.path() + "/source.log"), dlog = slurp(dir.path() + "/dest.log");
    EXPECT_EQ(source_exit, 1) << slog;
    EXPECT_EQ(dest_exit, 1) << dlog;
    EXPECT_LT(secs, 3.0);
    json sj, dj;
    try {
        sj = json::parse(slurp(dir.path() + "/source.json"));
        dj = json::parse(slurp(dir.path() + "/dest.json"));
    } catch (const std::exception& e) {
        FAIL() << "bad JSON report: " << e.what() << "\n" << slog << "\n" << dlog;
    }
    EXPECT_EQ(sj["error"], "migration cancelled by the caller") << slog;
    EXPECT_EQ(sj["cancelled_by_signal"].get<int>(), SIGINT);
    EXPECT_EQ(sj["rounds"].get<unsigned>(), 0u);
    EXPECT_NE(dj["error"].get<std::string>().find("aborted: migration cancelled by the caller"), std::string::npos)
        << dj["error"];
    EXPECT_EQ(dj["verified"].get<uint64_t>(), 0u);
}

// The rmig command's policy (security/settings.hpp): no credentials is a usage
// error (exit 2), plaintext only on loopback and only when asked for.
TEST(SynthGuest, SecurityPolicyOfTheRmigCommand) {
    auto run = [](std::vector<std::string> argv) {
        TempDir dir("synth-policy");
        argv.insert(argv.begin(), kSynth);
        Process p(argv, {dir.path() + "/out", dir.path() + "/err"});
        int rc = p.wait_for(20s).value_or(-1);
        return std::make_pair(rc, slurp(dir.path() + "/err"));
    };
    auto [rc, err] = run({"source", "--size", "1M", "--to", "tcp:10.0.0.2:7070"});
    EXPECT_EQ(rc, 2) << err;
    EXPECT_NE(err.find("--psk-file"), std::string::npos) << err;
    std::tie(rc, err) = run({"source", "--size", "1M", "--to", "tcp:10.0.0.2:7070", "--insecure-plaintext"});
    EXPECT_EQ(rc, 2) << err;
    EXPECT_NE(err.find("only on loopback"), std::string::npos) << err;
    std::tie(rc, err) = run({"dest", "--size", "1M", "--listen", "tcp:127.0.0.1:0"});
    EXPECT_EQ(rc, 2) << err;
    EXPECT_NE(err.find("--insecure-plaintext"), std::string::npos) << err;
    std::tie(rc, err) = run({"dest", "--size", "1M", "--listen", "tcp:0.0.0.0:0", "--insecure-plaintext"});
    EXPECT_EQ(rc, 2) << err;
}

TEST(SynthGuest, DestinationOfAnotherSizeRefusesAndNothingIsVerified) {
    Outcome o = migrate({"--dirty-rate", "16M"}, "128M");
    EXPECT_EQ(o.source_exit, 1) << o.source_log;
    EXPECT_EQ(o.dest_exit, 1) << o.dest_log;
    EXPECT_FALSE(o.source["ok"].get<bool>());
    EXPECT_NE(o.source["error"].get<std::string>().find("layout"), std::string::npos) << o.source["error"];
    EXPECT_EQ(o.dest["verified"].get<uint64_t>(), 0u);
}

// Post-copy forced after round 1 while the writers dirty 200 MiB/s: the
// guest starts on the destination after the full first round, whatever the
// policy decided then (a switchover too), its readers fault on the pages
// dirtied meanwhile, every page checked.
TEST(SynthGuest, PostcopyAfterOneRoundWithWritersRunning) {
    Outcome o = migrate({"--pattern", "uniform", "--dirty-rate", "200M", "--writers", "2", "--postcopy-after", "1",
                         "--downtime-ms", "50"});
    expect_postcopy_verified(o);
    EXPECT_EQ(o.source["postcopy"]["after_rounds"].get<unsigned>(), 1u);
    EXPECT_EQ(o.source["postcopy"]["reason"], "after 1 round") << o.source["postcopy"].dump(1);
    ASSERT_EQ(o.source["decisions"].size(), 1u) << o.source["decisions"].dump(1);
    EXPECT_EQ(o.source["decisions"][0]["round"].get<unsigned>(), 0u);
    EXPECT_EQ(o.source["round_log"][0]["pages_sent"].get<uint64_t>(), kPages);
}

// --postcopy alone: writers rewriting a hot set (a fifth of memory) at up to
// 400 MiB/s against a 1 us budget, which no dirty set but an empty one fits,
// so pre-copy can never converge however many pages the loaded machine lets
// the writers dirty; the policy's wish to throttle (or to give up) becomes
// the switch (the writers are never throttled) and the report says why. The
// destination's readers run unpaced, so they touch pending pages for sure.
TEST(SynthGuest, PostcopySwitchesByItselfWhenPreCopyCannotConverge) {
    Outcome o = migrate({"--pattern", "hot", "--hot-fraction", "0.2", "--hot-writes", "0.95", "--dirty-rate", "400M",
                         "--writers", "2", "--postcopy", "--downtime-ms", "0.001"},
                        "256M", "psk", "psk", "50", {"--guest-read-rate", "0"});
    expect_postcopy_verified(o);
    EXPECT_EQ(o.source["postcopy"]["after_rounds"].get<unsigned>(), 0u);
    const std::string reason = o.source["postcopy"]["reason"].get<std::string>();
    EXPECT_TRUE(reason.find("would not fit the") != std::string::npos || reason.find("gave up") != std::string::npos)
        << reason;
    EXPECT_EQ(o.source["throttle_percent"].get<unsigned>(), 0u);
    EXPECT_EQ(o.source_log.find("throttling writers"), std::string::npos) << o.source_log;
    const json& last = o.source["decisions"].back();
    EXPECT_FALSE(last["converging"].get<bool>()) << o.source["decisions"].dump(1);
    EXPECT_EQ(last["action"], "postcopy") << o.source["decisions"].dump(1);
}

// Post-copy after round 1 over a 96 MB/s link that goes down for 2 s (every
// connection reset, new ones refused) once the guest runs on the
// destination: both processes keep going, the source reconnects to the same
// session, learns which pages are still missing and pushes those; the
// destination's readers wait on their faults meanwhile. Every page verified.
TEST(SynthGuest, PostcopyLinkDownMidPushIsResumed) {
    std::atomic<bool> applied{false};
    Through t;
    t.rate = 96u << 20;
    t.fault = [&](lab::FaultProxy& proxy, const std::string& dest_log) {
        const auto until = std::chrono::steady_clock::now() + 60s;
        while (std::chrono::steady_clock::now() < until &&
               slurp(dest_log).find("post-copy: the guest runs here now") == std::string::npos)
            std::this_thread::sleep_for(10ms);
        std::this_thread::sleep_for(100ms);  // into the push
        proxy.apply(lab::LinkFault::down, 0, 0, 2000ms);
        applied = true;
    };
    Outcome o = migrate({"--pattern", "uniform", "--dirty-rate", "400M", "--writers", "2", "--postcopy-after", "1",
                         "--downtime-ms", "50", "--postcopy-recover", "30"},
                        "256M", "psk", "psk", "50", {"--postcopy-recover", "30"}, &t);
    ASSERT_TRUE(applied.load()) << "the destination never said the guest runs: " << o.dest_log;
    expect_postcopy_verified(o);
    EXPECT_GE(o.source["postcopy"]["resumed"].get<unsigned>(), 1u) << o.source["postcopy"].dump(1) << o.source_log;
    EXPECT_GE(o.dest["postcopy"]["resumed"].get<unsigned>(), 1u) << o.dest["postcopy"].dump(1) << o.dest_log;
    EXPECT_FALSE(o.source["postcopy"]["broke"].get<std::string>().empty());
    EXPECT_NE(o.dest_log.find("post-copy resumed"), std::string::npos) << o.dest_log;
    EXPECT_NE(o.source_log.find("x after a lost link"), std::string::npos) << o.source_log;
    EXPECT_NE(o.dest_log.find("x after a lost link"), std::string::npos) << o.dest_log;
}

// ---- over rdma: inside the Soft-RoCE VM (ctest -R synth_postcopy_over_rdma_in_softroce_vm)

// Post-copy after round 1 between two rmig-synth processes over rdma: the
// destination pulls the pending pages by RDMA READ and reads its guest's
// faults one-sided; its readers run the guest meanwhile; every page verified.
TEST(SynthGuestRdma, PostcopyAfterOneRoundPulledOverRdma) {
    const std::string uri = test::rdma_test_uri();
    if (uri.empty())
        GTEST_SKIP() << "no RDMA device on this machine (or built without rdma); this case runs inside the "
                        "Soft-RoCE VM (ctest -R synth_postcopy_over_rdma_in_softroce_vm)";
    // Authenticated, data channels unencrypted (as on a trusted fabric):
    // one-sided reads need plain data channels, and sealing every page on
    // the VM's emulated CPU would run at a few MB/s.
    Outcome o = migrate({"--pattern", "uniform", "--dirty-rate", "50M", "--writers", "2", "--postcopy-after", "1",
                         "--downtime-ms", "50", "--no-encrypt"},
                        "256M", "psk", "psk", "120", {"--no-encrypt"}, nullptr, uri);
    expect_postcopy_verified(o);
    EXPECT_TRUE(o.dest["postcopy"].value("rdma_reads", false)) << o.dest["postcopy"].dump(1);
    EXPECT_GT(o.dest["postcopy"].value("pulled_pages", uint64_t{0}), 0u) << "the destination should pull over rdma";
}
