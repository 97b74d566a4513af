// Channel mode's default time limits, the same for both sides (SourceOptions,
// DestOptions; `rmig migrate/receive --timeout` and `--stall-timeout`).
#pragma once

#include <chrono>

namespace rmig::qemu {

// The whole session, including (destination) waiting for a source.
inline constexpr std::chrono::seconds kDefaultTimeout{600};
// Nothing moved on any channel for this long: the link is stalled.
inline constexpr std::chrono::seconds kDefaultStallTimeout{30};

}  // namespace rmig::qemu
