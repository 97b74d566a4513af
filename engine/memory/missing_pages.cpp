#include "engine/memory/missing_pages.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "common/error.hpp"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

namespace rmig::engine {

namespace {

// UFFDIO_COPY / ZEROPAGE fail with EAGAIN while the address space changes
// under them; a few quick retries get through.
constexpr int kEagainRetries = 1000;

UniqueFd open_uffd(bool& kernel_faults) {
    const int flags = O_CLOEXEC | O_NONBLOCK;
    long fd = ::syscall(SYS_userfaultfd, flags);
    kernel_faults = fd >= 0;
    if (fd < 0 && errno == EPERM) fd = ::syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
    if (fd < 0) {
        const int err = errno;
        if (err == ENOSYS) throw_errno("userfaultfd for post-copy (kernel built without CONFIG_USERFAULTFD)", err);
        throw_errno("userfaultfd for post-copy", err);
    }
    return UniqueFd(static_cast<int>(fd));
}

}  // namespace

MissingPages::MissingPages(std::span<const std::span<std::byte>> ranges) : ranges_(ranges.begin(), ranges.end()) {
    uffd_ = open_uffd(kernel_faults_);
    // What the kernel offers decides the shared-memory features we ask for
    // (UFFDIO_API works once per fd, so ask a spare one first).
    uint64_t offered = 0;
    {
        bool unused = false;
        UniqueFd probe = open_uffd(unused);
        uffdio_api api{};
        api.api = UFFD_API;
        if (::ioctl(probe.get(), UFFDIO_API, &api) < 0) throw_errno("UFFDIO_API (post-copy)");
        offered = api.features;
    }
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = offered & (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MISSING_HUGETLBFS);
    if (::ioctl(uffd_.get(), UFFDIO_API, &api) < 0) throw_errno("UFFDIO_API (post-copy)");
    wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_) throw_errno("eventfd for the post-copy fault reader");
    for (auto r : ranges_) {
        uffdio_register reg{};
        reg.range.start = reinterpret_cast<uintptr_t>(r.data());
        reg.range.len = r.size();
        reg.mode = UFFDIO_REGISTER_MODE_MISSING;
        if (::ioctl(uffd_.get(), UFFDIO_REGISTER, &reg) < 0) {
            const int err = errno;
            release();
            throw_errno(cat("UFFDIO_REGISTER (missing pages) of ", static_cast<void*>(r.data()), " + ", r.size(),
                            " B; the region must be anonymous or shmem/memfd memory"),
                        err);
        }
        registered_ = true;
        if (!(reg.ioctls & (uint64_t{1} << _UFFDIO_COPY))) {
            release();
            throw Error("userfaultfd: UFFDIO_COPY is not offered for the guest regions");
        }
    }
}

MissingPages::~MissingPages() {
    try {
        release();
    } catch (const std::exception&) {
    }
}

void MissingPages::discard(void* base, size_t len, Kind& kind) {
    // MADV_REMOVE frees shared memory's backing pages (MADV_DONTNEED would
    // only unmap them, and the next touch would find the old data instead of
    // faulting); private memory does not take it and takes MADV_DONTNEED.
    if (kind != Kind::private_) {
        if (::madvise(base, len, MADV_REMOVE) == 0) {
            kind = Kind::shared;
            return;
        }
        if (kind == Kind::shared) throw_errno(cat("madvise(MADV_REMOVE) of ", base, " + ", len, " B before post-copy"));
        kind = Kind::private_;
    }
    if (::madvise(base, len, MADV_DONTNEED) < 0)
        throw_errno(cat("madvise(MADV_DONTNEED) of ", base, " + ", len, " B before post-copy"));
}

bool MissingPages::copy(void* dst, const void* src, size_t len) {
    // One page: placed whole, or there already (copy_run then gives 0).
    return copy_run(dst, src, len) == len;
}

size_t MissingPages::copy_run(void* dst, const void* src, size_t len) {
    uffdio_copy c{};
    c.dst = reinterpret_cast<uintptr_t>(dst);
    c.src = reinterpret_cast<uintptr_t>(src);
    c.len = len;
    for (int i = 0; i < kEagainRetries; ++i) {
        if (::ioctl(uffd_.get(), UFFDIO_COPY, &c) == 0) return len;
        if (errno == EEXIST) return 0;
        if (errno != EAGAIN) throw_errno(cat("UFFDIO_COPY of ", len, " B to ", dst));
        // Partly placed: the kernel stopped at a page that exists, or the
        // address space changed; the caller goes on from there.
        if (c.copy > 0) return static_cast<size_t>(c.copy);
        c.copy = 0;
    }
    throw Error(cat("UFFDIO_COPY to ", dst, ": address space kept changing (EAGAIN)"));
}

bool MissingPages::zero(void* dst, size_t len) {
    uffdio_zeropage z{};
    z.range.start = reinterpret_cast<uintptr_t>(dst);
    z.range.len = len;
    for (int i = 0; i < kEagainRetries; ++i) {
        if (::ioctl(uffd_.get(), UFFDIO_ZEROPAGE, &z) == 0) return true;
        if (errno == EEXIST) return false;
        if (errno != EAGAIN) throw_errno(cat("UFFDIO_ZEROPAGE of ", len, " B at ", dst));
        if (z.zeropage > 0) {
            z.range.start += static_cast<uint64_t>(z.zeropage);
            z.range.len -= static_cast<uint64_t>(z.zeropage);
        }
        z.zeropage = 0;
    }
    throw Error(cat("UFFDIO_ZEROPAGE at ", dst, ": address space kept changing (EAGAIN)"));
}

std::vector<uintptr_t> MissingPages::next_faults(std::chrono::milliseconds timeout) {
    std::vector<uintptr_t> out;
    std::array<pollfd, 2> fds{{{uffd_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}}};
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()));
    if (n < 0) {
        if (errno == EINTR) return out;
        throw_errno("poll on the post-copy userfaultfd");
    }
    if (fds[1].revents & POLLIN) {
        uint64_t v;
        [[maybe_unused]] auto r = ::read(wake_.get(), &v, sizeof v);
    }
    if (!(fds[0].revents & POLLIN)) return out;
    std::array<uffd_msg, 64> msgs;
    ssize_t got = ::read(uffd_.get(), msgs.data(), sizeof msgs);
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) return out;
        throw_errno("read from the post-copy userfaultfd");
    }
    for (ssize_t i = 0; i < got / static_cast<ssize_t>(sizeof(uffd_msg)); ++i)
        if (msgs[static_cast<size_t>(i)].event == UFFD_EVENT_PAGEFAULT)
            out.push_back(static_cast<uintptr_t>(msgs[static_cast<size_t>(i)].arg.pagefault.address));
    return out;
}

void MissingPages::wake_reader() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
}

void MissingPages::release() {
    if (!registered_) return;
    registered_ = false;
    for (auto r : ranges_) {
        uffdio_range range{reinterpret_cast<uintptr_t>(r.data()), r.size()};
        if (::ioctl(uffd_.get(), UFFDIO_UNREGISTER, &range) < 0 && errno != EINVAL)
            throw_errno(cat("UFFDIO_UNREGISTER of ", static_cast<void*>(r.data())));
    }
}

}  // namespace rmig::engine
