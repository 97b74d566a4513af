// Real QEMU through rmig over an emulated WAN (lab/wan/, rmig-wan): `rmig
// migrate` and `rmig receive` run in the two network namespaces of the link,
// so their TCP sees a real round trip, bottleneck and outages; the QEMUs stay
// here (rmig reaches them over UNIX sockets). Short shapes (a small guest,
// seconds): flows with compression, repeated outages within the reconnect
// grace, a second path that is down. Every case verifies the destination's
// memory byte for byte. Needs root and /dev/net/tun (network namespaces and
// TUN devices); skips, saying so, without them.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/error.hpp"
#include "common/process.hpp"
#include "lab/local_pair.hpp"
#include "qemu-plugin/link_tuning.hpp"

using namespace rmig;
using std::chrono::milliseconds;

namespace {

// `rmig-wan up` as a child process, for as long as the object lives.
class WanLink {
public:
    WanLink(const std::string& name, std::vector<std::string> shape) : name_(name) {
        ready_ = cat("/tmp/", name, ".ready");
        std::vector<std::string> argv = {RMIG_WAN_BINARY, "up", "--name", name, "--ready-file", ready_,
                                         "--duration", "600"};
        argv.insert(argv.end(), shape.begin(), shape.end());
        proc_ = std::make_unique<Process>(argv, Process::Options{cat("/tmp/", name, ".log"), "=stdout"});
        for (int i = 0; i < 200 && !std::filesystem::exists(ready_); ++i) {
            if (!proc_->running()) break;
            std::this_thread::sleep_for(milliseconds(50));
        }
        if (!std::filesystem::exists(ready_))
            throw Error(cat("rmig-wan did not bring the link up (see /tmp/", name, ".log)"));
    }
    ~WanLink() {
        proc_->signal(SIGTERM);
        if (!proc_->wait_for(milliseconds(10000))) proc_->stop();
    }
    std::string a() const { return name_ + "-a"; }
    std::string b() const { return name_ + "-b"; }

private:
    std::string name_, ready_;
    std::unique_ptr<Process> proc_;
};

std::string why_not_here() {
    if (::geteuid() != 0) return "needs root (network namespaces and TUN devices)";
    if (!std::filesystem::exists("/dev/net/tun")) return "needs /dev/net/tun";
    return "";
}

std::string link_name() { return cat("rmigw", ::getpid() % 100000); }

lab::RmigRun over(const WanLink& link, std::vector<std::string> extra) {
    lab::RmigRun run;
    run.settings.multifd_channels = 2;
    run.settings.downtime_limit_ms = 5000;
    run.source_netns = link.a();
    run.dest_netns = link.b();
    // A fresh namespace has every port free.
    run.listen_uri = "tcp:0.0.0.0:7411";
    run.connect_uri = "tcp:10.201.0.2:7411";
    run.timeout_s = 120;
    run.extra_args = std::move(extra);
    return run;
}

// Post-copy from the start, no multifd (the two do not mix).
lab::RmigRun postcopy_over(const WanLink& link, const std::string& grace_s, const std::string& stall_s) {
    auto run = over(link, {"--compress", "none", "--reconnect-grace", grace_s, "--stall-timeout", stall_s,
                           "--postcopy-after", "0"});
    run.settings.multifd_channels = 0;
    return run;
}

void expect_completed_and_verified(lab::LocalPair& pair, const lab::RunResult& r) {
    if (!r.ok) pair.keep();
    ASSERT_TRUE(r.ok) << "exit " << r.exit_code << ": " << r.error << " (see " << pair.dir() << ")";
    EXPECT_EQ(r.receive_exit_code, 0);
    lab::VerifyResult v = pair.verify();
    EXPECT_TRUE(v.ok) << v.detail << " (lab dir " << pair.dir() << ")";
    if (!v.ok) pair.keep();
}

}  // namespace

TEST(WanE2E, StripedFlowsWithCompressionCrossA20msLink) {
    if (auto why = why_not_here(); !why.empty()) GTEST_SKIP() << why;
    WanLink link(link_name(), {"--delay", "10ms", "--rate", "400mbit"});
    lab::LocalPair pair;
    auto r = pair.migrate_rmig(over(link, {"--flows", "2", "--compress", "zstd"}));
    expect_completed_and_verified(pair, r);
    const auto& c = r.report["compression"];
    EXPECT_EQ(c.value("mode", ""), "zstd") << c;
    EXPECT_LT(c.value("ratio", 1.0), 0.5) << "the test guest's pages are mostly zero bytes: " << c;
    EXPECT_EQ(r.report["flows"].value("per_stream", 0), 2) << r.report["flows"];
    EXPECT_GE(r.report["qemu"].value("total_time_ms", 0), 20) << "at least a round trip";
    // A 20 ms link is a long one: bbr where the host has it (--cc auto).
    const auto& t = r.report["link_tuning"];
    if (qemu::congestion_control_usable("bbr")) {
        EXPECT_EQ(t.value("congestion_control", ""), "bbr") << t;
    }
    EXPECT_GE(t.value("socket_buffer_bytes", 0), 8 << 20) << t;
}

TEST(WanE2E, AnOutageWithinTheGraceIsOnlyAPause) {
    if (auto why = why_not_here(); !why.empty()) GTEST_SKIP() << why;
    // The guests first, so the outage's clock starts with the migration:
    // down for 3 s from 1 s on, in the middle of a migration of ~4 s at 200
    // Mbit/s without compression.
    lab::LocalPair pair;
    WanLink link(link_name(), {"--delay", "10ms", "--rate", "200mbit", "--outage", "1+3"});
    auto r = pair.migrate_rmig(
        over(link, {"--compress", "none", "--reconnect-grace", "30", "--stall-timeout", "10"}));
    expect_completed_and_verified(pair, r);
    if (std::getenv("RMIG_KEEP_LAB")) pair.keep();
    // It crossed the 3 s outage (QEMU itself may have finished writing
    // before it, into rmig's send window).
    EXPECT_GT(r.wall_ms, 3000);
    std::printf("[ info ] %.0f ms wall, QEMU total %d ms, %d reconnects, %llu bytes resent\n", r.wall_ms,
                r.report["qemu"].value("total_time_ms", 0), r.report["flows"].value("reconnects", 0),
                static_cast<unsigned long long>(r.report["flows"].value("resent_bytes", uint64_t{0})));
}

// Post-copy from the start: the outage lands while QEMU pushes the pages it
// owes (the guest would be waiting on the destination for those it
// touches). rmig's resumable flows hide it: QEMU sees a pause, no
// postcopy-paused, and every page arrives (docs/postcopy.md).
TEST(WanE2E, AnOutageWithinTheGraceDuringPostcopyIsOnlyAPause) {
    if (auto why = why_not_here(); !why.empty()) GTEST_SKIP() << why;
    lab::LocalPair pair;
    WanLink link(link_name(), {"--delay", "10ms", "--rate", "200mbit", "--outage", "1+3"});
    auto run = postcopy_over(link, "30", "10");
    auto r = pair.migrate_rmig(run);
    expect_completed_and_verified(pair, r);
    auto pc = r.report.value("postcopy", nlohmann::json::object());
    ASSERT_TRUE(pc.value("switched", false) && pc["switched_at_s"].is_number() && pc["phase_s"].is_number()) << pc;
    // The switch came before the outage (1 s to 4 s) and the post-copy
    // phase ended after it: the outage fell inside.
    double at = pc["switched_at_s"].get<double>(), phase = pc["phase_s"].get<double>();
    EXPECT_LT(at, 1.0) << pc;
    EXPECT_GT(at + phase, 4.0) << pc;
    EXPECT_GT(r.report["flows"].value("reconnects", 0), 0) << r.report["flows"];
}

// What kills QEMU's own migration: after the outage the path has forgotten
// every connection (a stateful firewall failing over without its table) and
// resets each one that sends (rmig-wan `:reset`). rmig reopens its flows and
// its control channel within the grace, authenticated by the session.
TEST(WanE2E, AnOutageThatResetsEveryConnectionIsOnlyAPause) {
    if (auto why = why_not_here(); !why.empty()) GTEST_SKIP() << why;
    lab::LocalPair pair;
    WanLink link(link_name(), {"--delay", "10ms", "--rate", "200mbit", "--outage", "1+3:reset"});
    auto r = pair.migrate_rmig(
        over(link, {"--compress", "none", "--reconnect-grace", "30", "--stall-timeout", "10"}));
    expect_completed_and_verified(pair, r);
    EXPECT_GT(r.wall_ms, 3000);
    const auto& f = r.report["flows"];
    EXPECT_GE(f.value("control_reopened", 0), 1) << "the control connection was reset too: " << f;
    EXPECT_GE(f.value("reconnects", 0), 1) << f;
    std::printf("[ info ] %.0f ms wall, QEMU total %d ms, %d flow reconnects, control reopened %d times, %llu bytes resent\n",
                r.wall_ms, r.report["qemu"].value("total_time_ms", 0), f.value("reconnects", 0),
                f.value("control_reopened", 0),
                static_cast<unsigned long long>(f.value("resent_bytes", uint64_t{0})));
}

TEST(WanE2E, ASecondPathThatIsDownLeavesTheFirstToCarryEverything) {
    if (auto why = why_not_here(); !why.empty()) GTEST_SKIP() << why;
    WanLink link(link_name(), {"--delay", "10ms", "--rate", "400mbit", "--path2",
                               "delay=10ms,rate=200mbit,outage=0+600"});
    lab::LocalPair pair;
    auto r = pair.migrate_rmig(over(link, {"--flows", "2", "--path", "tcp:10.201.1.2:7411", "--reconnect-grace",
                                           "3", "--compress", "none"}));
    expect_completed_and_verified(pair, r);
    EXPECT_EQ(r.report["flows"]["paths"].size(), 2u) << r.report["flows"];
}

TEST(WanE2E, LinkDownPastTheGraceFailsAndTheSourceKeepsRunning) {
    if (auto why = why_not_here(); !why.empty()) GTEST_SKIP() << why;
    lab::LocalPair pair;
    WanLink link(link_name(), {"--delay", "10ms", "--rate", "200mbit", "--outage", "1+60"});
    auto run = over(link, {"--compress", "none", "--reconnect-grace", "3", "--stall-timeout", "5"});
    // The destination's side gives up on the silent link too, by itself.
    run.receive_extra_args = {"--stall-timeout", "5"};
    auto r = pair.migrate_rmig(run);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.exit_code, 1) << r.error << " (see " << pair.dir() << ")";
    EXPECT_EQ(r.receive_exit_code, 1) << "rmig receive did not give up by itself (see " << pair.dir() << ")";
    EXPECT_EQ(pair.source().state(), "running");
    EXPECT_TRUE(pair.source().keeps_running());
}

// Past the switch to post-copy neither host holds the whole guest: a link
// down past the grace must not resume the source (its memory is stale once
// the destination ran), nor quit the destination (a recovery needs it).
// With --postcopy-recover 0 rmig says so and exits 4; both QEMUs wait in
// postcopy-paused for a later rmig.
TEST(WanE2E, LinkDownPastTheGraceDuringPostcopyLeavesBothQemusForARecovery) {
    if (auto why = why_not_here(); !why.empty()) GTEST_SKIP() << why;
    lab::LocalPair pair;
    WanLink link(link_name(), {"--delay", "10ms", "--rate", "200mbit", "--outage", "1+60"});
    auto run = postcopy_over(link, "3", "5");
    run.extra_args.insert(run.extra_args.end(), {"--postcopy-recover", "0"});
    run.receive_extra_args = {"--postcopy-recover", "0"};
    run.resume = true;
    auto r = pair.migrate_rmig(run);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.exit_code, 4) << r.error << " (see " << pair.dir() << ")";
    if (r.exit_code != 4) pair.keep();
    auto pc = r.report.value("postcopy", nlohmann::json::object());
    EXPECT_TRUE(pc.value("switched", false)) << pc;
    EXPECT_NE(r.error.find("post-copy"), std::string::npos) << r.error;
    EXPECT_NE(pair.source().state(), "running") << "the source was resumed from a stale copy";
    // postcopy-paused, or (QEMU 7.2, a break after QEMU wrote its last
    // page) stuck in postcopy-active: its completion waits for a return
    // path that never closes, and migrate-pause cannot move it (docs/postcopy.md).
    std::string src_status = pair.source().qmp().execute("query-migrate").value("status", "");
    EXPECT_TRUE(src_status == "postcopy-paused" || src_status == "postcopy-active") << src_status;
    std::printf("[ info ] source QEMU after the failure: %s\n", src_status.c_str());
    if (std::getenv("RMIG_KEEP_LAB")) pair.keep();
    ASSERT_TRUE(pair.destination().alive()) << "the destination QEMU was quit: nothing left to recover";
    EXPECT_EQ(pair.destination().qmp().execute("query-migrate").value("status", ""), "postcopy-paused");
    if (HasFailure()) pair.keep();
}

// The same outage, long past the grace (3 s), but the link comes back after
// 12 s: both rmig processes pause their QEMUs, keep trying
// (--postcopy-recover, default 120 s), and resume the post-copy over a new
// session once the link is up (migrate-recover): the guest runs on, every
// page arrives. QEMU's own post-copy bandwidth is held at 12 MiB/s so that
// it cannot write its last page into rmig's buffers before the outage:
// QEMU 7.2 cannot pause a post-copy from there (docs/postcopy.md).
TEST(WanE2E, LinkDownPastTheGraceDuringPostcopyIsResumedWhenItComesBack) {
    if (auto why = why_not_here(); !why.empty()) GTEST_SKIP() << why;
    lab::LocalPair pair;
    pair.source().qmp().execute("migrate-set-parameters", {{"max-postcopy-bandwidth", 12 << 20}});
    WanLink link(link_name(), {"--delay", "10ms", "--rate", "200mbit", "--outage", "1+12"});
    auto run = postcopy_over(link, "3", "5");
    auto r = pair.migrate_rmig(run);
    expect_completed_and_verified(pair, r);
    auto pc = r.report.value("postcopy", nlohmann::json::object());
    EXPECT_TRUE(pc.value("recovered", false)) << pc;
    EXPECT_GE(pc.value("recovery_attempts", 0u), 1u) << pc;
    std::printf("[ info ] recovered after %u attempts: %s\n", pc.value("recovery_attempts", 0u),
                pc.value("broke", "").c_str());
}
