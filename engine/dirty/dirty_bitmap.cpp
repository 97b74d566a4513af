#include "engine/dirty/dirty_bitmap.hpp"

#include <bit>

#include "common/error.hpp"

namespace rmig::engine {

namespace {

// Bits of the last word that stand for real pages; the rest must stay clear
// so count() and merged KVM logs never report pages past the end.
uint64_t tail_mask(size_t pages) {
    const size_t rem = pages % DirtyBitmap::kBitsPerWord;
    return rem == 0 ? ~uint64_t{0} : (uint64_t{1} << rem) - 1;
}

}  // namespace

DirtyBitmap::DirtyBitmap(size_t pages, size_t page_size)
    : pages_(pages), page_size_(page_size), nwords_((pages + kBitsPerWord - 1) / kBitsPerWord),
      bits_(std::make_unique<std::atomic<uint64_t>[]>(nwords_)) {
    if (page_size == 0 || !std::has_single_bit(page_size))
        throw Error(cat("dirty bitmap: page size ", page_size, " is not a power of two"));
    // make_unique value-initialises, but say so rather than rely on it for atomics.
    clear_all();
}

void DirtyBitmap::clear_all() noexcept {
    for (size_t w = 0; w < nwords_; ++w) bits_[w].store(0, std::memory_order_relaxed);
}

void DirtyBitmap::fill() noexcept {
    if (nwords_ == 0) return;
    for (size_t w = 0; w + 1 < nwords_; ++w) bits_[w].store(~uint64_t{0}, std::memory_order_relaxed);
    bits_[nwords_ - 1].store(tail_mask(pages_), std::memory_order_relaxed);
}

size_t DirtyBitmap::count() const noexcept {
    size_t n = 0;
    for (size_t w = 0; w < nwords_; ++w) n += static_cast<size_t>(std::popcount(word(w)));
    return n;
}

size_t DirtyBitmap::count(size_t begin, size_t end) const noexcept {
    if (end > pages_) end = pages_;
    if (begin >= end) return 0;
    const size_t first = begin / kBitsPerWord, last = (end - 1) / kBitsPerWord;
    size_t n = 0;
    for (size_t w = first; w <= last; ++w) {
        uint64_t bits = word(w);
        if (w == first) bits &= ~uint64_t{0} << (begin % kBitsPerWord);
        if (w == last) bits &= tail_mask(end);
        n += static_cast<size_t>(std::popcount(bits));
    }
    return n;
}

void DirtyBitmap::take(DirtyBitmap& out) {
    if (out.pages_ != pages_ || out.page_size_ != page_size_)
        throw Error(cat("dirty bitmap: snapshot of ", out.pages_, " pages of ", out.page_size_,
                        " B cannot take a bitmap of ", pages_, " pages of ", page_size_, " B"));
    for (size_t w = 0; w < nwords_; ++w) {
        // Clear words are the common case late in pre-copy; reading first
        // avoids dirtying the cache line writers are about to use. A bit set
        // just after the read stays here for the next round, which is correct.
        uint64_t bits = bits_[w].load(std::memory_order_relaxed);
        if (bits != 0) bits = bits_[w].exchange(0, std::memory_order_acq_rel);
        out.bits_[w].store(bits, std::memory_order_relaxed);
    }
}

void DirtyBitmap::merge_from(const uint64_t* src, size_t nwords) {
    if (nwords > nwords_)
        throw Error(cat("dirty bitmap: cannot merge ", nwords, " words into a bitmap of ", nwords_,
                        " words (", pages_, " pages)"));
    for (size_t w = 0; w < nwords; ++w) {
        uint64_t bits = src[w];
        if (w + 1 == nwords_) bits &= tail_mask(pages_);
        if (bits != 0) bits_[w].fetch_or(bits, std::memory_order_relaxed);
    }
}

void DirtyBitmap::merge_from(const DirtyBitmap& other) {
    if (other.pages_ != pages_)
        throw Error(cat("dirty bitmap: cannot merge ", other.pages_, " pages into a bitmap of ", pages_));
    for (size_t w = 0; w < nwords_; ++w)
        if (uint64_t bits = other.word(w)) bits_[w].fetch_or(bits, std::memory_order_relaxed);
}

}  // namespace rmig::engine
