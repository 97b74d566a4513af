#include "engine/dirty/uffd_wp_source.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <vector>

#include "common/error.hpp"
#include "engine/dirty/shard.hpp"

// Debian 12's kernel headers (6.1) predate these; the values are kernel ABI.
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

namespace rmig::engine {

namespace {

constexpr uint64_t kFeatureWp = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
constexpr uint64_t kFeatureWpUnpopulated = UFFD_FEATURE_WP_UNPOPULATED;
constexpr uint64_t kFeatureWpShmem = UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

// Above this many dirty runs, one ioctl over the whole region is cheaper than
// one per run (the kernel skips already-protected PTEs quickly).
constexpr size_t kMaxProtectRuns = 256;

// UFFDIO_WRITEPROTECT fails with EAGAIN while the address space is changing
// under a non-cooperative event; it is worth a few quick retries.
constexpr int kEagainRetries = 1000;

UniqueFd open_uffd(bool user_mode_only) {
    const int base_flags = O_CLOEXEC | O_NONBLOCK;
    long fd = -1;
    if (user_mode_only) {
        fd = ::syscall(SYS_userfaultfd, base_flags | UFFD_USER_MODE_ONLY);
        // Kernels before 5.11 do not know the flag: try without it.
        if (fd < 0 && errno == EINVAL) fd = ::syscall(SYS_userfaultfd, base_flags);
    } else {
        fd = ::syscall(SYS_userfaultfd, base_flags);
    }
    if (fd < 0) {
        const int err = errno;
        if (err == EPERM)
            throw_errno(user_mode_only ? "userfaultfd" :
                        "userfaultfd (tracking kernel-mode writes: set vm.unprivileged_userfaultfd=1 "
                        "or run with CAP_SYS_PTRACE)", err);
        if (err == ENOSYS) throw_errno("userfaultfd (kernel built without CONFIG_USERFAULTFD)", err);
        throw_errno("userfaultfd", err);
    }
    return UniqueFd(static_cast<int>(fd));
}

uint64_t api_handshake(int fd, uint64_t features) {
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = features;
    if (::ioctl(fd, UFFDIO_API, &api) < 0)
        throw_errno(cat("UFFDIO_API with features 0x", std::hex, features));
    return api.features;
}

std::string hex(uint64_t v) { return cat("0x", std::hex, v); }

}  // namespace

uint64_t UffdWpSource::kernel_features() {
    // Features 0 asks the kernel to report all it offers; the fd is then spent
    // (UFFDIO_API works once per fd), so this uses a spare one.
    UniqueFd fd = open_uffd(true);
    return api_handshake(fd.get(), 0);
}

UffdWpSource::UffdWpSource(void* base, size_t length, Options opts)
    : base_(static_cast<char*>(base)), length_(length), opts_(opts) {
    const long ps = ::sysconf(_SC_PAGESIZE);
    if (ps <= 0) throw_errno("sysconf(_SC_PAGESIZE)");
    const auto page = static_cast<size_t>(ps);
    const auto addr = reinterpret_cast<uintptr_t>(base);
    if (length == 0 || addr % page != 0 || length % page != 0)
        throw Error(cat("uffd-wp dirty tracking: region ", base, " + ", length,
                        " B is empty or not aligned to the ", page, " B page size"));
    live_ = DirtyBitmap(length / page, page);

    const uint64_t offered = kernel_features();
    if (!(offered & kFeatureWp))
        throw Error(cat("uffd-wp dirty tracking: kernel lacks UFFD_FEATURE_PAGEFAULT_FLAG_WP "
                        "(userfaultfd write-protect, Linux 5.7+ with CONFIG_HAVE_ARCH_USERFAULTFD_WP); "
                        "offered features ", hex(offered)));
    const uint64_t wanted = kFeatureWp | (offered & (kFeatureWpUnpopulated | kFeatureWpShmem));

    uffd_ = open_uffd(!opts_.kernel_writes);
    features_ = api_handshake(uffd_.get(), wanted);
    if ((features_ & wanted) != wanted)
        throw Error(cat("uffd-wp dirty tracking: asked for features ", hex(wanted), ", kernel enabled ",
                        hex(features_)));

    uffdio_register reg{};
    reg.range.start = addr;
    reg.range.len = length;
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    if (::ioctl(uffd_.get(), UFFDIO_REGISTER, &reg) < 0) {
        const int err = errno;
        throw_errno(cat("UFFDIO_REGISTER (write-protect) of ", base, " + ", length, " B",
                        (features_ & kFeatureWpShmem) ? "" : " (shared memory needs UFFD_FEATURE_WP_HUGETLBFS_SHMEM, absent)",
                        "; the region must be mapped anonymous or shmem/memfd, not hugetlbfs or a file"),
                    err);
    }
    registered_ = true;
    if (!(reg.ioctls & (uint64_t{1} << _UFFDIO_WRITEPROTECT)))
        throw Error(cat("uffd-wp dirty tracking: UFFDIO_WRITEPROTECT not offered for ", base, " + ",
                        length, " B (ioctls ", hex(reg.ioctls), ")"));

    stop_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_fd_) throw_errno("eventfd for the uffd-wp handler");
}

UffdWpSource::~UffdWpSource() {
    try {
        stop();
    } catch (...) {
        // Nothing to report to from a destructor; the unregister below still
        // releases every writer.
    }
    if (registered_) {
        uffdio_range range{reinterpret_cast<uintptr_t>(base_), length_};
        (void)::ioctl(uffd_.get(), UFFDIO_UNREGISTER, &range);  // closing the fd would too
    }
}

void UffdWpSource::protect(size_t first_page, size_t npages, bool wp) {
    uffdio_writeprotect arg{};
    arg.range.start = reinterpret_cast<uintptr_t>(base_) + first_page * page_size();
    arg.range.len = npages * page_size();
    arg.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0;  // mode 0 also wakes the faulting thread
    for (int attempt = 0;; ++attempt) {
        if (::ioctl(uffd_.get(), UFFDIO_WRITEPROTECT, &arg) == 0) return;
        if (errno != EAGAIN || attempt >= kEagainRetries)
            throw_errno(cat("UFFDIO_WRITEPROTECT ", wp ? "on" : "off", " for pages ", first_page, "+",
                            npages, " of ", pages()));
        std::this_thread::yield();
    }
}

void UffdWpSource::start() {
    if (running_) throw Error("uffd-wp dirty tracking: start() while already running");
    if (!(features_ & kFeatureWpUnpopulated)) {
        // Without WP_UNPOPULATED the kernel only protects present PTEs, and a
        // first write to a never-touched page would go unseen. Reading maps
        // every page (zero page for anonymous memory) so all get protected.
        for (size_t off = 0; off < length_; off += page_size())
            (void)*static_cast<volatile const char*>(base_ + off);
    }
    // Drop a stop request left over from a previous run.
    uint64_t drained = 0;
    (void)::read(stop_fd_.get(), &drained, sizeof drained);
    stopping_ = false;
    std::lock_guard lock(mu_);
    live_.clear_all();
    handler_error_ = nullptr;
    try {
        protect(0, pages(), true);
        handler_ = std::thread([this] { handler_loop(); });
    } catch (...) {
        // Protected pages with no handler would block their writers forever.
        try {
            protect(0, pages(), false);
        } catch (...) {
        }
        throw;
    }
    running_ = true;
}

void UffdWpSource::collect(DirtyBitmap& snapshot) {
    if (!running_) throw Error("uffd-wp dirty tracking: collect() before start()");
    rethrow_handler_error();
    std::lock_guard lock(mu_);
    // Protect first, then swap: a write after the protect faults, and the
    // handler (blocked on mu_ until the swap is done) marks it in the new live
    // bitmap. Pages clear in live_ are still protected (the invariant), so only
    // dirty ones need protecting again.
    std::vector<PageRange> runs;
    bool whole = false;
    live_.for_each_run(0, pages(), [&](size_t first, size_t n) {
        if (whole) return;
        if (runs.size() == kMaxProtectRuns) whole = true;
        else runs.push_back({first, first + n});
    });
    if (whole) {
        protect(0, pages(), true);
    } else {
        for (const auto& r : runs) protect(r.begin, r.size(), true);
    }
    live_.take(snapshot);
}

void UffdWpSource::collect_final(DirtyBitmap& snapshot) {
    if (!running_) throw Error("uffd-wp dirty tracking: collect_final() before start()");
    rethrow_handler_error();
    std::lock_guard lock(mu_);
    live_.take(snapshot);
}

void UffdWpSource::stop() {
    if (!running_) return;
    running_ = false;
    stopping_ = true;  // seen within poll_timeout even if the eventfd write fails
    const uint64_t one = 1;
    (void)::write(stop_fd_.get(), &one, sizeof one);
    handler_.join();
    // With the handler gone nobody would answer a fault: lift every
    // protection, which also wakes any writer still waiting on one.
    protect(0, pages(), false);
    // Fault messages still queued are stale now; drop them.
    std::array<uffd_msg, 64> msgs{};
    for (int i = 0; i < 1024 && ::read(uffd_.get(), msgs.data(), sizeof msgs) > 0; ++i) {
    }
    rethrow_handler_error();
}

size_t UffdWpSource::faults_handled() const {
    std::lock_guard lock(mu_);
    return faults_;
}

void UffdWpSource::rethrow_handler_error() {
    std::exception_ptr err;
    {
        std::lock_guard lock(mu_);
        err = std::exchange(handler_error_, nullptr);
    }
    if (err) std::rethrow_exception(err);
}

void UffdWpSource::handler_loop() {
    const int timeout = static_cast<int>(opts_.poll_timeout.count());
    for (;;) {
        std::array<pollfd, 2> fds{{{uffd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}}};
        try {
            const int n = ::poll(fds.data(), fds.size(), timeout);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno("poll on userfaultfd");
            }
            if ((fds[1].revents & POLLIN) || stopping_) return;
            if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL))
                throw Error(cat("userfaultfd poll error, revents ", hex(static_cast<uint64_t>(fds[0].revents))));
            if (fds[0].revents & POLLIN) handle_faults();
        } catch (...) {
            // A thread cannot throw to its creator: keep the first failure for
            // collect()/stop(), and keep serving faults, as writers depend on it.
            std::lock_guard lock(mu_);
            if (!handler_error_) handler_error_ = std::current_exception();
            if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) return;  // the fd is unusable
        }
    }
}

void UffdWpSource::handle_faults() {
    std::array<uffd_msg, 64> msgs{};
    const ssize_t got = ::read(uffd_.get(), msgs.data(), sizeof msgs);
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) return;  // another wake-up took them
        throw_errno("read from userfaultfd");
    }
    const size_t n = static_cast<size_t>(got) / sizeof(uffd_msg);
    const auto base = reinterpret_cast<uintptr_t>(base_);
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < n; ++i) {
        // One bad message must not strand the writers behind the others.
        try {
            handle_fault(msgs[i], base);
        } catch (...) {
            if (!handler_error_) handler_error_ = std::current_exception();
        }
    }
}

void UffdWpSource::handle_fault(const uffd_msg& m, uintptr_t base) {
    if (m.event != UFFD_EVENT_PAGEFAULT) return;  // no other events were asked for
    const uint64_t addr = m.arg.pagefault.address;
    if (addr < base || addr >= base + length_)
        throw Error(cat("userfaultfd fault at ", hex(addr), " outside the tracked region"));
    if (!(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
        throw Error(cat("userfaultfd fault at ", hex(addr), " is not a write-protect fault (flags ",
                        hex(m.arg.pagefault.flags), ")"));
    // Mark before unprotecting: from the unprotect on, writes to the page are
    // invisible until the next collect(), which must find this bit.
    const size_t page = (addr - base) / page_size();
    live_.set(page);
    protect(page, 1, false);  // also wakes the writer
    ++faults_;
}

}  // namespace rmig::engine
