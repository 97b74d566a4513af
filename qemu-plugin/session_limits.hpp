// Channel mode's default time limits, the same for both sides (SourceOptions,
// DestOptions; `rmig migrate/receive --timeout` and `--stall-timeout`).
#pragma once

#include <chrono>
#include <cstdint>

namespace rmig::qemu {

// The whole session, including (destination) waiting for a source.
inline constexpr std::chrono::seconds kDefaultTimeout{600};
// Nothing moved on any channel for this long: the link is stalled.
inline constexpr std::chrono::seconds kDefaultStallTimeout{30};

}  // namespace rmig::qemu

namespace rmig::qemu {

// What a destination accepts to hold for the source's flows (docs/flows.md):
// the resend window per stream, and how long a lost connection may be away.
inline constexpr uint64_t kMaxFlowWindow = uint64_t{1} << 30;
inline constexpr int64_t kMaxReconnectGraceMs = 600'000;

}  // namespace rmig::qemu
