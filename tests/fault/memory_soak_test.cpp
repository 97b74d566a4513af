// The memory-mode fault soak's CI sample (lab/memory_soak.hpp): rmig-synth
// source and dest as two processes over dpdk memif, or over rdma inside the
// Soft-RoCE VM; each fixed case kills or stops a side (or drops dpdk frames)
// at its point, and the harness checks that nothing hangs, that a failed
// source runs on with every page what its writers wrote and migrates again to
// a fresh destination verified page by page, and that a destination reports
// success only with every page verified and never for a failed session.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/process.hpp"
#include "lab/memory_soak.hpp"

using namespace rmig;

namespace {

bool have_rdma_device() {
    std::error_code ec;
    return std::filesystem::is_directory("/sys/class/infiniband", ec) &&
           !std::filesystem::is_empty("/sys/class/infiniband", ec);
}

void run_set(const std::string& transport, lab::MemSoakOptions o) {
    Process::children_die_with_parent(true);  // a ctest timeout leaves no rmig-synth behind
    o.transport = transport;
    o.synth = RMIG_SYNTH_PATH;
    int n = 0;
    for (const auto& c : lab::ci_mem_cases(transport)) {
        ++n;
        lab::MemCaseResult r;
        // Where a kill lands is a race with the migration (a 64 MiB round over
        // memif takes ~0.1 s): a case that missed its point runs again.
        for (int attempt = 1; attempt <= 4; ++attempt) {
            r = lab::run_mem_case(c, o);
            if (!r.passed || r.observed == c.point) break;
            std::printf("[ info ] case %d attempt %d fired at %s, not %s: again\n", n, attempt,
                        lab::to_string(r.observed), lab::to_string(c.point));
        }
        std::string why;
        for (auto& f : r.failures) why += "\n  - " + f;
        EXPECT_TRUE(r.passed) << c.describe() << " (fired " << lab::to_string(r.observed) << ", source exit "
                              << r.source_exit << ", dest exit " << r.dest_exit << ", dir " << r.dir << "):" << why;
        EXPECT_EQ(r.observed, c.point) << c.describe();
        if (c.kind == lab::MemFaultKind::kill_dest || c.kind == lab::MemFaultKind::stall_source) {
            EXPECT_TRUE(r.retried) << c.describe() << ": the source should have failed and migrated again";
        }
        std::printf("[ info ] %-60s fired %-17s %5.1f s; source: %s; dest: %s\n", c.describe().c_str(),
                    lab::to_string(r.observed), r.seconds, r.source_error.c_str(), r.dest_error.c_str());
        std::fflush(stdout);
    }
}

}  // namespace

TEST(MemorySoakDpdk, CiSetOverMemif) {
#ifndef RMIG_SOAK_DPDK
    GTEST_SKIP() << "built without DPDK";
#endif
    lab::MemSoakOptions o = lab::default_mem_options("dpdk");
    o.case_deadline_s = 90;
    run_set("dpdk", o);
}

TEST(MemorySoakRdma, CiSetOverSoftRoce) {
    if (!have_rdma_device()) GTEST_SKIP() << "no RDMA device (run it in tests/rdma/vm/run-in-vm.sh)";
    lab::MemSoakOptions o = lab::default_mem_options("rdma");
    // The CI set runs one case at a time in its own VM: 10 s is enough there
    // (the soak's 15 s is for three cases at a time on a loaded machine), and
    // keeps the stall case, and so this test, near 90 s.
    o.step_timeout_s = 10;
    o.case_deadline_s = 90;
    run_set("rdma", o);
}

TEST(MemorySoakSet, CoversEveryKind) {
    for (const char* t : {"tcp", "rdma", "dpdk"}) {
        auto set = lab::ci_mem_cases(t);
        for (auto k : lab::mem_kinds(t)) {
            if (k == lab::MemFaultKind::stall_dest) continue;  // the source gives up after 20-60 s: soak only
            bool found = false;
            for (auto& c : set) found = found || c.kind == k;
            EXPECT_TRUE(found) << t << ": " << lab::to_string(k);
        }
    }
}
