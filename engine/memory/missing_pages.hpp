// The destination's side of memory-mode post-copy: pages the guest has not
// got yet are dropped from the regions and left to userfaultfd (MISSING
// mode), so a guest thread touching one blocks until it is placed. Pages are
// placed atomically with UFFDIO_COPY / UFFDIO_ZEROPAGE, which also wakes
// whoever waits on them; placing a page twice (a fetched page that the
// background push brings again) is a no-op that reports false.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/unique_fd.hpp"

namespace rmig::engine {

class MissingPages {
public:
    // One userfaultfd over every range in `ranges` (base, length; page
    // aligned), registered for missing-page faults. Kernel-mode faults (a
    // hypervisor's get_user_pages) are caught where the process may (root,
    // or vm.unprivileged_userfaultfd=1); else only user-mode ones, and
    // kernel_faults() says false. Throws Error naming what the kernel lacks.
    explicit MissingPages(std::span<const std::span<std::byte>> ranges);
    ~MissingPages();
    MissingPages(const MissingPages&) = delete;
    MissingPages& operator=(const MissingPages&) = delete;

    // Drops pages so that the next touch faults (MADV_REMOVE for shared
    // memory, MADV_DONTNEED for private). Call before the guest runs.
    // `shared` caches which one the mapping took (unknown at first), so a
    // region dropped run by run costs one call per run.
    enum class Kind { unknown, shared, private_ };
    static void discard(void* base, size_t len, Kind& kind);

    // Places `src` (len bytes) at `dst`; false if the page was there already.
    bool copy(void* dst, const void* src, size_t len);
    // Places consecutive pages from `src` at `dst`, in one call where it can;
    // returns the bytes placed before the first page that was there already
    // (all of `len` if none was).
    size_t copy_run(void* dst, const void* src, size_t len);
    // Places zero-filled pages at `dst`; false if they were there already.
    bool zero(void* dst, size_t len);

    // Faulting addresses (page aligned) read within `timeout`; empty when
    // none came, or after wake_reader().
    std::vector<uintptr_t> next_faults(std::chrono::milliseconds timeout);
    // From another thread: ends a next_faults() under way.
    void wake_reader();

    // Unregisters every range: later touches no longer fault. Call once every
    // page is placed (a missing page would read as zeros afterwards).
    void release();

    bool kernel_faults() const { return kernel_faults_; }

private:
    UniqueFd uffd_;
    UniqueFd wake_;
    std::vector<std::span<std::byte>> ranges_;
    bool registered_ = false;
    bool kernel_faults_ = false;
};

}  // namespace rmig::engine
