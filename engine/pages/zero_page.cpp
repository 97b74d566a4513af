#include "engine/pages/zero_page.hpp"

#include <cstdint>
#include <cstring>

#if defined(__SSE4_1__)
#include <smmintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace rmig::engine {

namespace {

constexpr size_t kBlock = 64;  // one cache line: the unit of the early exit

bool tail_is_zero(const unsigned char* p, size_t len) noexcept {
    unsigned char acc = 0;
    for (size_t i = 0; i < len; ++i) acc = static_cast<unsigned char>(acc | p[i]);
    return acc == 0;
}

}  // namespace

namespace detail {

bool is_zero_portable(const void* p, size_t len) noexcept {
    const auto* b = static_cast<const unsigned char*>(p);
    const size_t blocks = len / kBlock;
    for (size_t i = 0; i < blocks; ++i, b += kBlock) {
        uint64_t w[kBlock / sizeof(uint64_t)];
        std::memcpy(w, b, kBlock);  // memcpy: no alignment or aliasing assumptions
        uint64_t acc = 0;
        for (uint64_t v : w) acc |= v;
        if (acc != 0) return false;
    }
    return tail_is_zero(b, len % kBlock);
}

}  // namespace detail

#if defined(__SSE2__)

namespace {

// OR of one 64-byte block, unaligned loads (pages are aligned in practice, and
// unaligned loads of aligned data cost nothing on any x86-64-v2 CPU).
inline __m128i or_block(const unsigned char* b) noexcept {
    const auto* v = reinterpret_cast<const __m128i*>(b);
    __m128i a = _mm_or_si128(_mm_loadu_si128(v + 0), _mm_loadu_si128(v + 1));
    __m128i c = _mm_or_si128(_mm_loadu_si128(v + 2), _mm_loadu_si128(v + 3));
    return _mm_or_si128(a, c);
}

inline bool all_zero(__m128i v) noexcept {
#if defined(__SSE4_1__)
    return _mm_testz_si128(v, v) != 0;
#else
    return _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128())) == 0xffff;
#endif
}

}  // namespace

bool is_zero_page(const void* p, size_t len) noexcept {
    const auto* b = static_cast<const unsigned char*>(p);
    // One test per 64-byte block, in address order. Unrolling to one test per
    // 256 bytes measured ~30% slower on a 64 MiB buffer (EPYC); the compiler
    // then loaded each 256-byte group last cache line first, which likely
    // defeats the hardware prefetcher. A non-zero page exits after its first
    // non-zero cache line.
    for (size_t blocks = len / kBlock; blocks > 0; --blocks, b += kBlock) {
        if (!all_zero(or_block(b))) return false;
    }
    return tail_is_zero(b, len % kBlock);
}

#else

bool is_zero_page(const void* p, size_t len) noexcept { return detail::is_zero_portable(p, len); }

#endif

PageClass classify(const std::byte* page, size_t page_size) noexcept {
    return is_zero_page(page, page_size) ? PageClass::zero : PageClass::normal;
}

const char* to_string(PageClass c) noexcept {
    switch (c) {
        case PageClass::zero: return "zero";
        case PageClass::normal: return "normal";
    }
    return "unknown";
}

}  // namespace rmig::engine
