// The synthetic guest's memory: one anonymous mapping of N pages, populated
// up front, whose pages hold content derived from (page index, write count)
// so that no page is trivially zero unless it was chosen to stay zero; and a
// per-page XXH3 hash list that follows every write.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace rmig::synth {

inline constexpr size_t kPageSize = 4096;

// Writes page `page`'s content for write number `version` (>= 1): a header
// (page, version, magic), a pseudo-random first half and a repeated 64-byte
// motif in the second half, so lz4/zstd find roughly 2:1 like real memory.
void fill_page(std::byte* dst, uint64_t page, uint64_t version) noexcept;

uint64_t page_hash(const std::byte* page) noexcept;  // XXH3-64 of one page

// What a page holds, seen without the source: all zero, what fill_page()
// wrote for page `index` at some version >= 1, or neither (another page's
// content, a torn or corrupted page).
enum class PageContent { zero, synth, invalid };
PageContent classify_page(const std::byte* page, uint64_t index) noexcept;

class Mapping {
public:
    // Anonymous private mapping of `bytes`, populated (MAP_POPULATE). Throws Error.
    explicit Mapping(size_t bytes);
    ~Mapping();
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    std::byte* data() const { return base_; }
    size_t size() const { return size_; }
    size_t pages() const { return size_ / kPageSize; }
    std::byte* page(size_t p) const { return base_ + p * kPageSize; }

private:
    std::byte* base_;
    size_t size_;
};

// Source side: the mapping, the write count and the current hash of every page.
class GuestMemory {
public:
    // Fills every page (version 1) except a `zero_fraction` share, which stays
    // zero until a writer hits it; uses `threads` threads.
    GuestMemory(size_t bytes, double zero_fraction, unsigned threads);

    Mapping& mapping() { return map_; }
    size_t pages() const { return map_.pages(); }

    // Rewrites `page` with its next version and records its new hash. Only
    // one thread may write a given page (writers own disjoint page sets).
    void write(size_t page) noexcept;

    // The hash list as it stands (valid once every writer has stopped).
    const std::vector<uint64_t>& hashes() const { return hashes_; }
    // Recomputes every page's hash from memory into `out` (with `threads`).
    void hash_all(std::vector<uint64_t>& out, unsigned threads) const;

private:
    Mapping map_;
    std::vector<uint64_t> hashes_;
    std::unique_ptr<uint32_t[]> versions_;
};

// Runs fn(begin, end) over [0, n) split into `threads` contiguous parts.
template <class Fn>
void parallel_for(size_t n, unsigned threads, Fn&& fn);

}  // namespace rmig::synth

#include "lab/synth/parallel_for.inl"
