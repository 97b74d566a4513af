// One dirty bit per page of a memory region, shared by the threads that mark
// pages dirty (fault handler, VMM log import) and the pre-copy round that sends
// them. Bit i of word w is page w*64+i: the little-endian layout
// KVM_GET_DIRTY_LOG uses, so a VMM's log can be merged word by word.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace rmig::engine {

class DirtyBitmap {
public:
    static constexpr size_t kBitsPerWord = 64;

    // `pages` bits, all clear. page_size only records the geometry (callers
    // turn page numbers into byte offsets with it); it must be a power of two.
    explicit DirtyBitmap(size_t pages = 0, size_t page_size = 4096);

    // A moved-from bitmap is empty (0 pages).
    DirtyBitmap(DirtyBitmap&& o) noexcept { *this = std::move(o); }
    DirtyBitmap& operator=(DirtyBitmap&& o) noexcept {
        pages_ = std::exchange(o.pages_, 0);
        page_size_ = o.page_size_;
        nwords_ = std::exchange(o.nwords_, 0);
        bits_ = std::move(o.bits_);
        return *this;
    }
    DirtyBitmap(const DirtyBitmap&) = delete;
    DirtyBitmap& operator=(const DirtyBitmap&) = delete;

    size_t pages() const noexcept { return pages_; }
    size_t page_size() const noexcept { return page_size_; }
    size_t words() const noexcept { return nwords_; }

    // Safe from any number of threads at once, and concurrently with take():
    // a bit set here lands either in the snapshot being taken or in the next.
    void set(size_t page) noexcept {
        words_ptr()[page / kBitsPerWord].fetch_or(uint64_t{1} << (page % kBitsPerWord),
                                                  std::memory_order_relaxed);
    }
    bool test(size_t page) const noexcept {
        return (word(page / kBitsPerWord) >> (page % kBitsPerWord)) & 1U;
    }
    uint64_t word(size_t w) const noexcept { return words_ptr()[w].load(std::memory_order_relaxed); }

    // Not atomic as a whole: use while no one else writes, or accept that
    // concurrent sets may survive (clear_all) or be duplicated (fill).
    void clear_all() noexcept;
    void fill() noexcept;  // every page dirty: the full first round

    size_t count() const noexcept;                        // set bits in [0, pages)
    size_t count(size_t begin, size_t end) const noexcept;  // set bits in [begin, end)

    // Moves every set bit into `out` (its previous contents are replaced) and
    // clears it here, word by word with an atomic exchange, so writers keep
    // marking pages for the next round while `out` is processed. Throws Error
    // if `out` has a different geometry.
    void take(DirtyBitmap& out);

    // ORs in a caller-supplied bitmap (KVM_GET_DIRTY_LOG layout, see top).
    // nwords may be smaller than words(); bits past pages() are ignored.
    // Throws Error if nwords > words(). Atomic per word.
    void merge_from(const uint64_t* src, size_t nwords);
    // ORs in another bitmap of the same geometry (throws Error otherwise).
    void merge_from(const DirtyBitmap& other);

    // Calls fn(page) for each set page in [begin, end), in ascending order,
    // skipping clear words whole. end is clamped to pages().
    template <class Fn>
    void for_each_set(size_t begin, size_t end, Fn&& fn) const {
        if (end > pages_) end = pages_;
        if (begin >= end) return;
        size_t w = begin / kBitsPerWord;
        const size_t last = (end - 1) / kBitsPerWord;
        uint64_t bits = word(w) & (~uint64_t{0} << (begin % kBitsPerWord));
        for (;;) {
            if (w == last && end % kBitsPerWord != 0)
                bits &= (uint64_t{1} << (end % kBitsPerWord)) - 1;
            while (bits != 0) {
                fn(w * kBitsPerWord + static_cast<size_t>(std::countr_zero(bits)));
                bits &= bits - 1;  // drop the lowest set bit
            }
            if (w == last) return;
            bits = word(++w);
        }
    }

    // Calls fn(first_page, page_count) for each maximal run of set pages in
    // [begin, end): what a sender or a re-protect wants, one call per run.
    template <class Fn>
    void for_each_run(size_t begin, size_t end, Fn&& fn) const {
        size_t run_begin = 0, run_end = 0;  // empty run
        for_each_set(begin, end, [&](size_t page) {
            if (page == run_end && run_end != run_begin) {
                ++run_end;
                return;
            }
            if (run_end != run_begin) fn(run_begin, run_end - run_begin);
            run_begin = page;
            run_end = page + 1;
        });
        if (run_end != run_begin) fn(run_begin, run_end - run_begin);
    }

private:
    std::atomic<uint64_t>* words_ptr() const noexcept { return bits_.get(); }

    size_t pages_ = 0;
    size_t page_size_ = 4096;
    size_t nwords_ = 0;
    std::unique_ptr<std::atomic<uint64_t>[]> bits_;
};

}  // namespace rmig::engine
