// `rmig-lab wan`: QEMU's own TCP migration against rmig across an emulated
// WAN (lab/wan/, brought up by the caller: bench/scripts/wan_vs_qemu.sh), on a
// guest whose memory holds a realistic mix (lab/memory_mix.hpp). Every run's
// destination memory is verified byte for byte.
#pragma once

#include <string>
#include <vector>

namespace rmig::lab {

int wan_bench(const std::vector<std::string>& argv);
extern const char* const kWanBenchUsage;

}  // namespace rmig::lab
