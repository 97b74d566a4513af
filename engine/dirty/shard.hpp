// Splitting a page range among worker threads. Every cut falls on a 64-page
// boundary (one bitmap word), so no two workers ever touch the same word of a
// DirtyBitmap: no false sharing on bits, no torn word scans.
#pragma once

#include <cstddef>
#include <vector>

#include "engine/dirty/dirty_bitmap.hpp"

namespace rmig::engine {

struct PageRange {
    size_t begin = 0;  // first page
    size_t end = 0;    // one past the last page
    size_t size() const { return end - begin; }
    bool operator==(const PageRange&) const = default;
};

// Shared contract of both splitters: the result is at most k non-empty ranges,
// in ascending order, disjoint, covering [begin, end) exactly; internal cuts
// are multiples of 64 (only begin and end themselves may be unaligned).
// Fewer than k come back when the range spans fewer than k words (or, for the
// dirty-balanced split, when fewer than k pieces hold dirty pages). An empty
// range gives an empty vector. k == 0 throws Error.

// Equal numbers of words per shard (differing by at most one word).
std::vector<PageRange> shard_pages(size_t begin, size_t end, size_t k);

// About equal numbers of *set bits* per shard, from per-word popcounts, so a
// round whose dirty pages cluster in one area still keeps every worker busy.
// A shard's dirty count differs from total/k by at most one word's worth of
// bits (64) on each side. With no dirty page at all, falls back to shard_pages.
std::vector<PageRange> balance_by_dirty_count(const DirtyBitmap& bitmap, size_t begin, size_t end,
                                              size_t k);

}  // namespace rmig::engine
