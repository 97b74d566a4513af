// `rmig-lab converge`: channel-mode convergence, rmig's steering of QEMU's
// auto-converge against QEMU's defaults (no auto-converge) and against
// auto-converge as a user would set it by hand (QEMU's 20% then +10%), the
// same guest, alternating, on whatever link the caller set up
// (bench/scripts/convergence_channel.sh shapes one in a network namespace).
// A run that does not converge within --timeout is a result, not an error:
// completion rate, total time, blackout and the most QEMU throttled, per variant.
#pragma once

#include <string>
#include <vector>

namespace rmig::lab {

int converge_bench(const std::vector<std::string>& argv);
extern const char* const kConvergeBenchUsage;

}  // namespace rmig::lab
