// Post-copy through rmig with real QEMU (TCG) on both sides (docs/postcopy.md):
// rmig switches QEMU to post-copy, the destination runs the guest before its
// last page is in, and every page still arrives. Each case checks the
// destination's memory: byte for byte against the stopped source where the
// destination stays paused, the guest's own pattern where it ran meanwhile.
#include <gtest/gtest.h>
#ifdef RMIG_HAVE_RDMA
#include <infiniband/verbs.h>
#endif

#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "common/error.hpp"
#include "common/process.hpp"
#include "guest/guest_check.hpp"
#include "lab/local_pair.hpp"
#include "tests/qemu-plugin/tunnel_fixture.hpp"

using namespace rmig;

namespace {

lab::RunResult migrate(lab::LocalPair& pair, std::vector<std::string> args, bool resume,
                       uint64_t max_bandwidth = qemu::MigrationSettings{}.max_bandwidth) {
    lab::RmigRun run;
    run.settings.max_bandwidth = max_bandwidth;
    run.resume = resume;
    run.extra_args = std::move(args);
    return pair.migrate_rmig(run);
}

void expect_switched(const lab::RunResult& r, const std::string& reason_part) {
    const auto& pc = r.report["postcopy"];
    ASSERT_TRUE(pc.is_object()) << "no post-copy section in the report";
    EXPECT_TRUE(pc.value("enabled", false)) << pc;
    EXPECT_TRUE(pc.value("switched", false)) << pc;
    EXPECT_NE(pc.value("reason", "").find(reason_part), std::string::npos) << pc;
    EXPECT_TRUE(pc["phase_s"].is_number()) << pc;
    EXPECT_GT(pc.value("bytes", 0ull), 0ull) << "nothing was sent after the switch: " << pc;
    EXPECT_EQ(r.report["qemu"].value("status", ""), "completed");
    std::cout << "post-copy: " << pc.dump() << "\n  blackout: " << r.report["blackout"].dump() << "\n";
}

}  // namespace

// Every page after the switch: the destination stays paused (--no-resume),
// QEMU pushes what it still owes, and both memories match byte for byte.
TEST(PostcopyE2E, FromTheStartEveryPageArrivesByteForByte) {
    lab::LocalPair pair;
    lab::RunResult r = migrate(pair, {"--postcopy-after", "0"}, false);
    ASSERT_TRUE(r.ok) << "exit " << r.exit_code << ": " << r.error << " (see " << pair.dir() << ")";
    expect_switched(r, "at once");
    EXPECT_EQ(r.report["postcopy"].value("after_passes", 99u), 0u);
    // QEMU 7.2 has postcopy-preempt: a second stream for faulted pages.
    bool preempt = r.report["postcopy"].value("preempt", false);
    EXPECT_EQ(r.report["channels"].size(), preempt ? 2u : 1u) << r.report["channels"];
    lab::VerifyResult v = pair.verify();
    EXPECT_TRUE(v.ok) << v.detail << " (lab dir " << pair.dir() << ")";
    if (HasFailure()) pair.keep();
}

// The guest runs on the destination after one pass, faulting on the pages
// it rewrites before they arrive; rmig reports a blackout that ends when it
// runs (the lab's own monitors agree), and the guest's memory is whole.
TEST(PostcopyE2E, AfterOnePassTheGuestRunsOnTheDestinationWhilePagesFollow) {
    lab::LocalPair pair;
    // 40 MiB/s: the guest redirties its 99 MiB faster than that, so
    // pre-copy cannot end by itself before the switch. Post-copy held to
    // the same pace: the phase then lasts seconds, not the ~0.5 s in which
    // a guest on a loaded TCG host was once not scheduled to fault at all.
    pair.source().qmp().execute("migrate-set-parameters", {{"max-postcopy-bandwidth", 40 << 20}});
    lab::RunResult r = migrate(pair, {"--postcopy-after", "1"}, true, 40 << 20);
    ASSERT_TRUE(r.ok) << "exit " << r.exit_code << ": " << r.error << " (see " << pair.dir() << ")";
    expect_switched(r, "after 1 pass");
    EXPECT_EQ(r.report["postcopy"].value("after_passes", 0u), 1u);
    // The guest rewrites its 99 MiB in milliseconds, far faster than the
    // pages it dirtied during the first pass can be pushed: it faults.
    EXPECT_GT(r.report["postcopy"].value("requests", 0ull), 0ull) << r.report["postcopy"];
    const auto& b = r.report["blackout"];
    ASSERT_TRUE(b["ms"].is_number() && r.blackout_ms) << b;
    EXPECT_NEAR(b["ms"].get<double>(), *r.blackout_ms, b.value("uncertainty_ms", 0.0) + 0.05);
    EXPECT_EQ(pair.destination().state(), "running");
    EXPECT_TRUE(pair.destination().keeps_running()) << "the guest makes no progress on the destination";
    // The summary says so, in words.
    std::stringstream said;
    said << std::ifstream(pair.dir() + "/migrate-1.log").rdbuf();
    EXPECT_NE(said.str().find("post-copy      after 1 pass, "), std::string::npos) << said.str();
    EXPECT_NE(said.str().find(cat(r.report["postcopy"].value("requests", 0ull), " pages faulted")), std::string::npos)
        << said.str();
    // Whole memory: stop it and check its own pattern.
    pair.destination().qmp().execute("stop");
    std::string dump = pair.dir() + "/destination.mem";
    pair.destination().dump_memory(dump);
    auto pattern = guest::check_pattern(guest::load_dump(dump));
    EXPECT_TRUE(pattern) << pattern.detail;
    if (HasFailure()) pair.keep();
}

// A link slower than the guest dirties its memory: pre-copy cannot converge,
// and with --postcopy rmig switches by itself after the first pass instead
// of slowing the guest.
TEST(PostcopyE2E, SwitchesByItselfWhenPreCopyWouldNotConverge) {
    lab::LocalPair pair;
    lab::RunResult r = migrate(pair, {"--postcopy"}, false, 40 << 20);
    ASSERT_TRUE(r.ok) << "exit " << r.exit_code << ": " << r.error << " (see " << pair.dir() << ")";
    expect_switched(r, "would not converge");
    EXPECT_EQ(r.report["convergence"].value("auto_converge", true), false) << "post-copy instead of a throttle";
    EXPECT_EQ(r.report["convergence"].value("max_throttle_percent", 1u), 0u);
    lab::VerifyResult v = pair.verify();
    EXPECT_TRUE(v.ok) << v.detail << " (lab dir " << pair.dir() << ")";
    if (HasFailure()) pair.keep();
}

// Post-copy and multifd do not mix in QEMU 7.2: refused before anything
// moves, and the source guest keeps running.
TEST(PostcopyE2E, WithMultifdIsRefusedAndTheSourceRunsOn) {
    lab::LocalPair pair;
    std::string log = pair.dir() + "/migrate-refused.log";
    Process rmig({lab::rmig_binary(), "migrate", "--qmp", pair.source().qmp_path(), "--to", "tcp:127.0.0.1:9",
                  "--postcopy", "--multifd", "2", "--insecure-plaintext"},
                 {log, "=stdout"});
    EXPECT_EQ(rmig.wait_for(std::chrono::seconds(30)), std::optional<int>(2)) << "not a usage error";
    std::stringstream said;
    said << std::ifstream(log).rdbuf();
    EXPECT_NE(said.str().find("--postcopy cannot be combined with --multifd"), std::string::npos) << said.str();
    EXPECT_EQ(pair.source().state(), "running");
    EXPECT_EQ(pair.source().qmp().execute("query-migrate").value("status", "none"), "none") << "something started";
}

// libvirt's path (docs/tunnel.md): QEMU migrates to a UNIX socket, and
// tunnel-send / tunnel-receive carry each of its connections in connect
// order -- the postcopy-preempt channel is told apart only by that order.
// Real QEMUs, post-copy from the start with a preempt channel, the
// destination paused: every page arrives byte for byte.
TEST(PostcopyE2E, ThroughTheTunnelWithAPreemptChannel) {
    test::tunnel::Tunnel t;
    lab::LocalPair pair;
    qemu::MigrationSettings s;
    s.postcopy = true;
    s.postcopy_preempt = true;
    qemu::apply_settings(pair.destination().qmp(), s, qemu::Side::destination);
    qemu::apply_settings(pair.source().qmp(), s, qemu::Side::source);
    pair.destination().qmp().execute("migrate-incoming", {{"uri", "unix:" + t.dst_path()}});
    pair.source().qmp().execute("migrate", {{"uri", "unix:" + t.src_path()}});
    pair.source().qmp().execute("migrate-start-postcopy");
    std::string status;
    nlohmann::json q;
    for (int i = 0; i < 600; ++i) {  // 60 s
        q = pair.source().qmp().execute("query-migrate");
        status = q.value("status", "");
        if (status == "completed" || status == "failed" || status == "cancelled") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(status, "completed") << "(lab dir " << pair.dir() << ")";
    EXPECT_GT(q.value("ram", nlohmann::json::object()).value("postcopy-bytes", 0ull), 0ull)
        << "nothing was sent in post-copy: " << q.dump();
    // The destination QEMU finished loading (-S: it stays paused).
    for (int i = 0; i < 100 && pair.destination().state() == "inmigrate"; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_TRUE(sent[0].ok) << sent[0].error;
    EXPECT_EQ(sent[0].streams.size(), 2u) << "main and preempt: two connections, in order";
    lab::VerifyResult v = pair.verify();
    EXPECT_TRUE(v.ok) << v.detail << " (lab dir " << pair.dir() << ")";
    if (HasFailure()) pair.keep();
}

// ---- recovery (docs/postcopy.md, "When post-copy breaks") ----
namespace {

// Post-copy from the start, paced by QEMU's own post-copy bandwidth so that
// the kill lands with most pages still to come; one rmig process is killed
// once 24 MiB moved and started again (as an operator or a unit manager
// would) 4 s later. The other rmig notices past its 2 s grace, QEMU pauses
// its broken post-copy, and the new session resumes it: every page arrives.
lab::RunResult killed_and_restarted(lab::LocalPair& pair, bool kill_receiver) {
    pair.source().qmp().execute("migrate-set-parameters", {{"max-postcopy-bandwidth", 12 << 20}});
    lab::RmigRun run;
    run.resume = false;
    run.timeout_s = 150;
    run.extra_args = {"--postcopy-after", "0", "--reconnect-grace", "2", "--postcopy-recover", "60"};
    run.receive_extra_args = {"--postcopy-recover", "60"};
    (kill_receiver ? run.kill_receiver_after : run.kill_migrator_after) = uint64_t{24} << 20;
    run.restart_killed_after = std::chrono::milliseconds(4000);
    return pair.migrate_rmig(run);
}

void expect_recovered(lab::LocalPair& pair, const lab::RunResult& r) {
    ASSERT_TRUE(r.ok) << "exit " << r.exit_code << ": " << r.error << " (see " << pair.dir() << ")";
    const auto& pc = r.report["postcopy"];
    EXPECT_TRUE(pc.value("switched", false)) << pc;
    EXPECT_TRUE(pc.value("recovered", false)) << "the run that finished should be a recovery: " << pc;
    EXPECT_EQ(r.report["qemu"].value("status", ""), "completed");
    std::cout << "recovered: " << pc.dump() << "\n";
    lab::VerifyResult v = pair.verify();
    EXPECT_TRUE(v.ok) << v.detail << " (lab dir " << pair.dir() << ")";
}

}  // namespace

// `rmig receive` dies mid post-copy: `rmig migrate` pauses its QEMU once the
// grace is over and keeps trying; a new `rmig receive` on the same address
// takes the destination QEMU from postcopy-paused (migrate-recover).
TEST(PostcopyRecoveryE2E, ReceiverKilledMidPostcopyIsResumedByANewOne) {
    lab::LocalPair pair;
    lab::RunResult r = killed_and_restarted(pair, true);
    expect_recovered(pair, r);
    EXPECT_GE(r.report["postcopy"].value("recovery_attempts", 0u), 1u) << r.report["postcopy"];
    EXPECT_FALSE(r.report["postcopy"].value("broke", "").empty()) << r.report["postcopy"];
    if (HasFailure()) pair.keep();
}

// `rmig migrate` dies mid post-copy: its QEMU pauses by itself (its socket
// closed), `rmig receive` cuts its own QEMU's stream past the grace (that
// QEMU pauses too) and waits on the same address; a new `rmig migrate` with
// the same arguments finds its QEMU in postcopy-paused and resumes it.
TEST(PostcopyRecoveryE2E, MigratorKilledMidPostcopyIsResumedByANewOne) {
    lab::LocalPair pair;
    lab::RunResult r = killed_and_restarted(pair, false);
    expect_recovered(pair, r);
    if (HasFailure()) pair.keep();
}

#ifdef RMIG_HAVE_RDMA
// Post-copy over rmig's rdma transport, inside the Soft-RoCE VM (ctest -R
// postcopy_e2e_over_rdma_in_softroce_vm): from the start, with QEMU's preempt
// channel as a second rdma stream, the destination paused; every page
// arrives byte for byte.
TEST(PostcopyE2ERdma, FromTheStartWithAPreemptChannel) {
    int devices = 0;
    if (ibv_device** l = ibv_get_device_list(&devices)) ibv_free_device_list(l);
    if (devices == 0)
        GTEST_SKIP() << "no RDMA device on this machine; this case runs inside the Soft-RoCE VM "
                        "(ctest -R postcopy_e2e_over_rdma_in_softroce_vm)";
    const char* addr = std::getenv("RMIG_RDMA_ADDR");
    lab::LocalPair pair;
    lab::RmigRun run;
    run.listen_uri = cat("rdma:", addr ? addr : "10.11.12.1", ":0");
    run.encrypt = false;  // AES-GCM in the VM's emulated CPU is too slow (see migration_e2e_test)
    run.timeout_s = 150;
    run.extra_args = {"--postcopy-after", "0"};
    lab::RunResult r = pair.migrate_rmig(run);
    ASSERT_TRUE(r.ok) << "exit " << r.exit_code << ": " << r.error << " (see " << pair.dir() << ")";
    expect_switched(r, "at once");
    bool preempt = r.report["postcopy"].value("preempt", false);
    EXPECT_EQ(r.report["channels"].size(), preempt ? 2u : 1u) << r.report["channels"];
    lab::VerifyResult v = pair.verify();
    EXPECT_TRUE(v.ok) << v.detail << " (lab dir " << pair.dir() << ")";
    if (HasFailure()) pair.keep();
}
#endif
