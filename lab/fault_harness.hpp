// Fault injection on real QEMU pairs: each case boots a source and a
// destination QEMU (lab::LocalPair), migrates through `rmig migrate` ->
// FaultProxy -> `rmig receive`, breaks something at a chosen point, and then
// checks what rmig promises:
//   - nothing hangs: both rmig processes end before the case's deadline;
//   - the source guest keeps running (or, where nobody is left to resume it
//     -- the source rmig was killed, or QEMU had completed -- the operator's
//     `cont` brings it back) and its serial output keeps growing;
//   - the destination never runs a guest unless the migration completed;
//   - a completed migration verifies byte for byte; a failed one is retried
//     on the same source (fresh destination, no faults) and that verifies.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rmig::lab {

enum class FaultKind { cut, corrupt, stall, delay, kill_source_rmig, kill_dest_rmig, kill_dest_qemu };
enum class FaultPoint { before_first_byte, mid_round, switchover, after_completion, not_reached };
const char* to_string(FaultKind k);
const char* to_string(FaultPoint p);
inline constexpr FaultKind kAllKinds[] = {FaultKind::cut, FaultKind::corrupt, FaultKind::stall,
                                          FaultKind::delay, FaultKind::kill_source_rmig,
                                          FaultKind::kill_dest_rmig, FaultKind::kill_dest_qemu};
inline constexpr FaultPoint kAllPoints[] = {FaultPoint::before_first_byte, FaultPoint::mid_round,
                                            FaultPoint::switchover, FaultPoint::after_completion};

struct FaultCase {
    FaultKind kind = FaultKind::cut;
    FaultPoint point = FaultPoint::mid_round;
    uint32_t multifd = 0;          // QEMU multifd channels (rmig carries multifd+1 data channels)
    int channel = -1;              // link faults: rmig channel (0 control, 1 main, 2.. multifd); -1 pick
    uint64_t after_ram_bytes = 0;  // mid_round: fire once QEMU has sent this much RAM
    uint64_t corrupt_skip = 0;     // corrupt: bytes to let pass before the flipped one
    int delay_ms = 1000;           // delay: how long the channel forwards nothing
    bool resume = false;           // let rmig resume the destination guest on success
    std::string describe() const;
    nlohmann::json to_json() const;
};

struct HarnessOptions {
    int stall_timeout_s = 4;     // rmig --stall-timeout in the faulted run
    int rmig_timeout_s = 60;     // rmig --timeout in the faulted run
    int case_deadline_s = 120;   // hard limit for the whole case; processes are killed after it
    uint64_t ram_mib = 128;
    bool keep_failed = true;     // keep the lab directory of a failed case
};

struct CaseResult {
    FaultCase fault;
    FaultPoint observed = FaultPoint::not_reached;  // where the fault actually fired
    bool passed = false;
    std::vector<std::string> failures;
    std::vector<std::string> notes;  // outcomes worth knowing that break no invariant
    int migrate_exit = -1, receive_exit = -1;
    std::string migrate_error, receive_error;
    bool operator_resumed = false;  // the harness had to `cont` the source
    bool retried = false;
    double seconds = 0;
    std::string dir;  // kept lab directory (failed cases)
    nlohmann::json to_json() const;
};

FaultCase random_case(std::mt19937_64& rng);
// The fixed set CI runs: every kind at least once, over all four points.
std::vector<FaultCase> ci_cases();
CaseResult run_case(const FaultCase& c, const HarnessOptions& o);

}  // namespace rmig::lab
