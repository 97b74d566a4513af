// Zero-page detection and page classification. Zero pages are the most common
// page of a freshly booted or ballooned guest; sending them as a marker instead
// of 4 KiB of zeros is the cheapest win of a pre-copy round, so the check must
// run well above memcpy speed (it only reads, and stops at the first non-zero
// 64-byte block).
#pragma once

#include <cstddef>

namespace rmig::engine {

// True when all `len` bytes at `p` are zero. Any alignment works. `len` should
// be a multiple of 64 (a page) for full speed; a shorter tail is checked bytewise.
// Uses SSE4.1 (PTEST) when built for x86-64-v2, SSE2 on plain x86-64, a
// portable 64-bit word loop elsewhere.
bool is_zero_page(const void* p, size_t len) noexcept;

enum class PageClass {
    zero,    // all bytes zero: sent as a marker, no payload
    normal,  // anything else: sent raw or compressed
};

PageClass classify(const std::byte* page, size_t page_size) noexcept;

const char* to_string(PageClass c) noexcept;

namespace detail {
// The portable fallback, exposed so tests can check it against the SIMD path
// on the same machine.
bool is_zero_portable(const void* p, size_t len) noexcept;
}  // namespace detail

}  // namespace rmig::engine
