// Dirty tracking by the kernel: userfaultfd write-protect over a memory region
// of this process (anonymous private or memfd/shmem shared; not hugetlbfs).
//
// start() write-protects the region; the first write to a page faults, a
// handler thread marks the page dirty and lifts the protection for that page
// (waking the writer). collect() re-protects the pages dirtied since the last
// round and hands their bits over. Both steps run under one lock, which keeps
// the invariant "every page is write-protected or marked dirty in the live
// bitmap", so no write can slip between rounds unseen.
//
// Limits: only writes through this process's mapping are seen (not another
// process sharing the memfd, not DMA). Writes the kernel makes on the
// process's behalf (read(2) into the region, ...) fault in kernel mode: with
// Options::kernel_writes false they fail with EFAULT instead of being tracked.
// Without UFFD_FEATURE_WP_UNPOPULATED (kernels before 6.4) start() pre-faults
// every page by reading it, and pages dropped later (MADV_DONTNEED, hole
// punch) lose their protection: their next write goes unseen.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>

struct uffd_msg;  // <linux/userfaultfd.h>, kept out of this header

#include "common/unique_fd.hpp"
#include "engine/dirty/dirty_source.hpp"

namespace rmig::engine {

class UffdWpSource final : public DirtySource {
public:
    struct Options {
        // Also track (rather than fail with EFAULT) writes the kernel makes
        // into the region. Needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1.
        bool kernel_writes = false;
        // Longest the handler thread sleeps in poll(); stop() wakes it at once
        // through an eventfd, so this only bounds a lost wake-up.
        std::chrono::milliseconds poll_timeout{200};
    };

    // Opens the userfaultfd and registers [base, base+length) for write-protect
    // tracking. base and length must be multiples of the system page size.
    // Throws Error saying what the kernel lacks or forbids.
    UffdWpSource(void* base, size_t length, Options opts);
    UffdWpSource(void* base, size_t length) : UffdWpSource(base, length, Options{}) {}
    ~UffdWpSource() override;  // stop(), then unregister
    UffdWpSource(const UffdWpSource&) = delete;
    UffdWpSource& operator=(const UffdWpSource&) = delete;

    // start/collect/stop belong to one thread (the round driver). collect()
    // holds the lock faults also need, so a driver calling it back to back
    // with no work in between slows writers down.
    void start() override;
    void collect(DirtyBitmap& snapshot) override;  // rethrows a handler-thread failure
    void collect_final(DirtyBitmap& snapshot) override;  // no re-protecting
    void stop() override;  // joins the handler, unprotects and wakes every writer

    size_t pages() const { return live_.pages(); }
    size_t page_size() const { return live_.page_size(); }
    uint64_t features() const { return features_; }  // features enabled on this fd
    size_t faults_handled() const;                    // write faults seen so far

    // The UFFD_FEATURE_* bits the running kernel offers (probed on a spare fd).
    static uint64_t kernel_features();

private:
    void handler_loop();
    void handle_faults();
    void handle_fault(const uffd_msg& m, uintptr_t base);  // with mu_ held
    void protect(size_t first_page, size_t npages, bool wp);
    void rethrow_handler_error();

    char* base_;
    size_t length_;
    Options opts_;
    uint64_t features_ = 0;
    UniqueFd uffd_;
    UniqueFd stop_fd_;  // eventfd: stop() writes it to end handler_loop at once
    bool registered_ = false;
    bool running_ = false;
    std::atomic<bool> stopping_{false};

    // Held while marking-then-unprotecting (handler) and while
    // re-protecting-then-swapping (collect), which makes each pair atomic to
    // the other; see the invariant at the top.
    mutable std::mutex mu_;
    DirtyBitmap live_;
    size_t faults_ = 0;
    std::exception_ptr handler_error_;
    std::thread handler_;
};

}  // namespace rmig::engine
