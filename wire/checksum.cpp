#include "wire/checksum.hpp"

#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#include <xxhash.h>

#include <new>

namespace rmig::wire {

namespace {

// libxxhash's dispatching entry point picks AVX2/AVX-512 at run time (3-4x
// the SSE2 code rmig is compiled for) and falls back to SSE2 on an x86-64-v2
// CPU. It returns with the upper vector halves dirty, which would make every
// later SSE instruction in this thread pay a transition penalty, so clear them.
__attribute__((target("avx"))) void clear_upper_vectors() { __builtin_ia32_vzeroupper(); }

const bool g_has_avx = __builtin_cpu_supports("avx");

}  // namespace

StreamingChecksum::StreamingChecksum(uint64_t seed) : state_(XXH3_createState()) {
    if (!state_) throw std::bad_alloc();
    XXH3_64bits_reset_withSeed(static_cast<XXH3_state_t*>(state_), seed);
}

StreamingChecksum::~StreamingChecksum() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void StreamingChecksum::update(std::span<const std::byte> data) {
    XXH3_64bits_update_dispatch(static_cast<XXH3_state_t*>(state_), data.data(), data.size());
    if (g_has_avx) clear_upper_vectors();
}

uint64_t StreamingChecksum::digest() const { return XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_)); }

uint64_t checksum(std::span<const std::byte> data, uint64_t seed) {
    uint64_t h = XXH3_64bits_withSeed_dispatch(data.data(), data.size(), seed);
    if (g_has_avx) clear_upper_vectors();
    return h;
}

}  // namespace rmig::wire
