// Integrity check used by every frame and handshake: XXH3-64 (libxxhash).
// XXH3 runs at memory speed with SSE2 alone, so it also stays fast on the
// x86-64-v2 CPU that the Soft-RoCE test VM emulates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace rmig::wire {

uint64_t checksum(std::span<const std::byte> data, uint64_t seed = 0);

// The same value computed piece by piece: digest() equals checksum() over the
// concatenation of every update() (XXH3's streaming state).
class StreamingChecksum {
public:
    explicit StreamingChecksum(uint64_t seed = 0);
    ~StreamingChecksum();
    StreamingChecksum(const StreamingChecksum&) = delete;
    StreamingChecksum& operator=(const StreamingChecksum&) = delete;
    void update(std::span<const std::byte> data);
    uint64_t digest() const;

private:
    void* state_;  // XXH3_state_t
};

}  // namespace rmig::wire
