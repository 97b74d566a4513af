// Fault injection on memory mode over any transport (tcp, rdma, dpdk): each
// case runs `rmig-synth dest` and `rmig-synth source` (a writing synthetic
// guest, every page hashed) as two processes, breaks something at a chosen
// point from outside -- SIGKILL or SIGSTOP of either side, a short stop that
// must be survived, a lossy dpdk link -- and checks what memory mode promises:
//   - nothing hangs: every process ends before the case's deadline;
//   - the source is never lost: after a failure its writers run on, every page
//     is what they last wrote, and the same process migrates again to a fresh
//     destination, verified page by page (--retry-uri-file);
//   - the destination never takes a torn guest: it reports success only with
//     every page verified against the source's hash list, and never for a
//     session the source reports failed (that would be two running guests);
//   - a fault that must be survived (short stop, loss) ends verified.
// A TCP proxy cannot sit in an rdma or dpdk link, so there are no cut or
// corrupt kinds here (docs/fault-injection.md says why); tcp's link faults are
// the channel-mode soak's and memory_fault_test's.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rmig::lab {

enum class MemFaultKind { kill_source, kill_dest, stall_source, stall_dest, pause_source, pause_dest, loss };
enum class MemFaultPoint { before_first_byte, mid_round, switchover, throughout, not_reached };
const char* to_string(MemFaultKind k);
const char* to_string(MemFaultPoint p);

struct MemFaultCase {
    MemFaultKind kind = MemFaultKind::kill_dest;
    MemFaultPoint point = MemFaultPoint::mid_round;
    unsigned workers = 2;        // engine workers = data channels
    std::string codec = "none";  // none: one-sided pages (rdma, dpdk); lz4: batches
    unsigned after_round = 0;    // mid-round: fire once the source has sent this round
    int fire_delay_ms = 0;       // before-first-byte / switchover: fire this long after the trigger
    int hold_ms = 150;           // the source stays this long inside pause() (a slow device save)
    int pause_ms = 800;          // pause-*: how long the side is stopped (under every timeout)
    double loss = 0;             // loss: fraction of dpdk data frames dropped, both ways
    std::string describe() const;
    nlohmann::json to_json() const;
};

struct MemSoakOptions {
    std::string transport = "tcp";  // tcp | rdma | dpdk
    std::string synth;              // rmig-synth binary
    uint64_t size_mib = 64;
    std::string dirty_rate = "64M";  // writes to a hot quarter of memory
    double downtime_ms = 20;        // the source's budget: tight, so a migration takes several rounds
    // rmig-synth dest --step-timeout: a silent source is given up after it (8 s:
    // 4 s tripped on a slow round when this 2-core machine ran at load 25).
    double step_timeout_s = 8;
    int case_deadline_s = 150;      // hard limit per case; every process is killed after it
    bool keep_failed = true;
};

struct MemCaseResult {
    MemFaultCase fault;
    MemFaultPoint observed = MemFaultPoint::not_reached;
    bool passed = false;
    std::vector<std::string> failures;
    std::vector<std::string> notes;
    int source_exit = -1, dest_exit = -1;
    std::string source_error, dest_error;
    bool retried = false;  // the source migrated again after the failure (or a fresh pair did)
    double seconds = 0;
    std::string dir;  // kept case directory (failed cases)
    nlohmann::json to_json() const;
};

// The kinds a transport can inject (loss: dpdk only).
std::vector<MemFaultKind> mem_kinds(const std::string& transport);
MemFaultCase random_mem_case(std::mt19937_64& rng, const std::string& transport);
// The short fixed set CI runs: every kind the transport has, over the points.
std::vector<MemFaultCase> ci_mem_cases(const std::string& transport);
MemCaseResult run_mem_case(const MemFaultCase& c, const MemSoakOptions& o);
// The options for `transport` (rdma: the sizes and timeouts that fit the VM).
MemSoakOptions default_mem_options(const std::string& transport);

// `rmig-lab faults --mode memory ...` (lab/memory_soak_cli.cpp): runs the
// cases, prints each and the tally, writes --json; returns the exit code.
extern const char* const kMemorySoakUsage;
int memory_faults(const std::vector<std::string>& argv);

}  // namespace rmig::lab
