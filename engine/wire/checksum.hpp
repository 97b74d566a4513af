// Integrity check used by every frame and handshake: XXH3-64 (libxxhash).
// XXH3 runs at memory speed with SSE2 alone, so it also stays fast on the
// x86-64-v2 CPU that the Soft-RoCE test VM emulates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace rmig::wire {

uint64_t checksum(std::span<const std::byte> data, uint64_t seed = 0);

}  // namespace rmig::wire
