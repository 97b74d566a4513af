// The destination's pages during memory-mode post-copy: which are still
// missing, placing each exactly once (pushed or fetched, whichever comes
// first), and the guest's faults on them with how long each waited.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/dirty/dirty_bitmap.hpp"
#include "engine/memory/memory_layout.hpp"
#include "engine/memory/missing_pages.hpp"
#include "engine/memory/memory_dest.hpp"

namespace rmig::engine {

struct PageRef {
    uint32_t region = 0;
    uint64_t page = 0;
};

// Drops `pages` from `regions` so that touching one faults once caught
// (MissingPages::discard, one call per run), skipping those set in
// `already` (dropped before). Returns how many pages it dropped.
uint64_t drop_pages(const std::vector<Region>& regions, size_t page_size, const std::vector<DirtyBitmap>& pages,
                    const std::vector<DirtyBitmap>* already = nullptr);

class PostcopyPlacer {
public:
    // Places pages through `uffd`, which catches the faults on the regions
    // (registered before any page was dropped: nothing may fill a dropped
    // page meanwhile, e.g. khugepaged collapsing a huge page). The pending
    // pages must have been dropped (drop_pages) before the guest starts.
    PostcopyPlacer(const std::vector<Region>& regions, size_t page_size, const std::vector<DirtyBitmap>& pending,
                   MissingPages& uffd);

    // Places one page (`data`: page-size bytes, or empty for a zero page);
    // true if it was missing until now. `fetched`: it came on request.
    bool place(PageRef at, std::span<const std::byte> data, bool fetched);
    // Places `data.size() / page size` consecutive pages from `first` on,
    // runs of missing ones in one call each (the push sends pages in order,
    // so a batch is mostly such runs); returns how many it placed.
    size_t place_run(PageRef first, std::span<const std::byte> data, bool fetched);

    // The guest's new faults on missing pages (each page once), within `timeout`.
    std::vector<PageRef> next_faults(std::chrono::milliseconds timeout);
    void wake_reader() { uffd_.wake_reader(); }

    uint64_t missing() const { return missing_.load(); }
    // For resuming after a lost link: the pages still missing, per region
    // (what the source must send again), and the faults still waiting for
    // their page (asked for on the lost link; asked again on the new one).
    std::vector<DirtyBitmap> still_missing() const;
    std::vector<PageRef> waiting() const;
    // Whether this page was pending at the switch and is not placed yet (a
    // pull skips the others); may change as soon as it returned.
    bool missing(PageRef at) const {
        return pending_[at.region].test(at.page) && !placed_[at.region].test(at.page);
    }
    // Stops catching faults; only once missing() is 0, or after a failure.
    void release() { uffd_.release(); }

    // faults, fetched pages and the fault latency percentiles.
    void fill(DestPostcopy& out) const;

private:
    using Clock = std::chrono::steady_clock;
    struct Bits {
        explicit Bits(size_t pages) : words((pages + 63) / 64), w(new std::atomic<uint64_t>[(pages + 63) / 64]()) {}
        size_t words;
        std::unique_ptr<std::atomic<uint64_t>[]> w;
        // Sets the bit; true if it was clear.
        bool set(uint64_t p) {
            const uint64_t bit = uint64_t{1} << (p % 64);
            return !(w[p / 64].fetch_or(bit) & bit);
        }
        bool test(uint64_t p) const { return (w[p / 64].load() >> (p % 64)) & 1U; }
    };
    static uint64_t key(PageRef r) { return (uint64_t{r.region} << 48) | r.page; }
    void placed(PageRef at, bool fetched);  // its bit was clear: count it, time its fault

    const std::vector<Region>& regions_;
    const size_t ps_;
    MissingPages& uffd_;
    std::vector<Bits> pending_, placed_, faulted_;
    std::atomic<uint64_t> missing_{0};
    std::atomic<uint64_t> waiting_{0};  // faults whose page is not placed yet
    std::atomic<uint64_t> fetched_{0};
    mutable std::mutex mu_;
    std::unordered_map<uint64_t, Clock::time_point> fault_at_;
    std::vector<double> latency_us_;
    uint64_t faults_ = 0;
};

}  // namespace rmig::engine
