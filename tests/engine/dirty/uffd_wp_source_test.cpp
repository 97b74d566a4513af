// Runs userfaultfd write-protect tracking on real memory of this process.
#include "engine/dirty/uffd_wp_source.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;

namespace {

constexpr size_t kPage = 4096;

class Mapping {
public:
    // Anonymous private memory, or a memfd mapped shared when `shared`.
    Mapping(size_t len, bool shared) : len_(len) {
        int fd = -1;
        if (shared) {
            memfd_ = UniqueFd(::memfd_create("rmig-dirty-test", MFD_CLOEXEC));
            if (!memfd_) throw_errno("memfd_create");
            if (::ftruncate(memfd_.get(), static_cast<off_t>(len)) < 0) throw_errno("ftruncate");
            fd = memfd_.get();
        }
        void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                         shared ? MAP_SHARED : (MAP_PRIVATE | MAP_ANONYMOUS), fd, 0);
        if (p == MAP_FAILED) throw_errno("mmap");
        base_ = static_cast<char*>(p);
    }
    ~Mapping() { ::munmap(base_, len_); }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;

    char* base() const { return base_; }
    size_t len() const { return len_; }
    size_t pages() const { return len_ / kPage; }
    uint64_t* word(size_t page, size_t idx) const {
        return reinterpret_cast<uint64_t*>(base_ + page * kPage) + idx;
    }

private:
    size_t len_;
    char* base_ = nullptr;
    UniqueFd memfd_;
};

std::set<size_t> pages_of(const DirtyBitmap& b) {
    std::set<size_t> out;
    b.for_each_set(0, b.pages(), [&](size_t p) { out.insert(p); });
    return out;
}

std::set<size_t> random_pages(std::mt19937_64& rng, size_t pages, size_t n) {
    std::set<size_t> out{0, pages - 1};  // the edges, always
    while (out.size() < n) out.insert(rng() % pages);
    return out;
}

// Writes to `pages` from another thread, as a guest vCPU would: the faults
// must be answered by the handler thread, not by us.
void write_from_thread(const Mapping& m, const std::set<size_t>& pages, uint64_t value) {
    std::thread t([&] {
        for (size_t p : pages) std::atomic_ref<uint64_t>(*m.word(p, p % 512)).store(value, std::memory_order_relaxed);
    });
    t.join();
}

bool has_feature(uint64_t f) { return (UffdWpSource::kernel_features() & f) != 0; }

void exact_rounds(const Mapping& m) {
    UffdWpSource src(m.base(), m.len());
    DirtyBitmap snap(src.pages(), src.page_size());
    ASSERT_EQ(src.pages(), m.pages());
    src.start();
    std::mt19937_64 rng(1);
    const auto round1 = random_pages(rng, m.pages(), 1000);
    write_from_thread(m, round1, 1);
    src.collect(snap);
    EXPECT_EQ(pages_of(snap), round1);

    // Round 2 rewrites half of round 1 (those were unprotected, then must have
    // been protected again by collect) plus new pages.
    std::set<size_t> round2;
    size_t i = 0;
    for (size_t p : round1)
        if (i++ % 2 == 0) round2.insert(p);
    for (size_t p : random_pages(rng, m.pages(), 500)) round2.insert(p);
    write_from_thread(m, round2, 2);
    src.collect(snap);
    EXPECT_EQ(pages_of(snap), round2);

    src.collect(snap);  // nothing written
    EXPECT_EQ(snap.count(), 0U);

    // Reads are not writes.
    std::thread reader([&] {
        uint64_t sum = 0;
        for (size_t p = 0; p < m.pages(); p += 7) sum += std::atomic_ref<uint64_t>(*m.word(p, 0)).load();
        EXPECT_GE(sum, 0U);
    });
    reader.join();
    src.collect(snap);
    EXPECT_EQ(snap.count(), 0U);
    EXPECT_EQ(src.faults_handled(), round1.size() + round2.size());
    src.stop();
}

}  // namespace

TEST(UffdWpSource, KernelOffersWriteProtect) {
    const uint64_t f = UffdWpSource::kernel_features();
    std::printf("uffd features offered: 0x%llx  WP=%d WP_HUGETLBFS_SHMEM=%d WP_UNPOPULATED=%d "
                "WP_ASYNC=%d\n",
                static_cast<unsigned long long>(f), !!(f & UFFD_FEATURE_PAGEFAULT_FLAG_WP),
                !!(f & UFFD_FEATURE_WP_HUGETLBFS_SHMEM), !!(f & (1ULL << 13)), !!(f & (1ULL << 15)));
    EXPECT_TRUE(f & UFFD_FEATURE_PAGEFAULT_FLAG_WP);
}

TEST(UffdWpSource, AnonymousUntouchedExactPagesPerRound) {
    Mapping m(64 << 20, false);  // never touched: relies on WP_UNPOPULATED (or the pre-fault)
    exact_rounds(m);
}

TEST(UffdWpSource, AnonymousPopulatedExactPagesPerRound) {
    Mapping m(64 << 20, false);
    std::memset(m.base(), 0x5a, m.len());  // present pages, likely THP-backed
    exact_rounds(m);
}

TEST(UffdWpSource, MemfdSharedExactPagesPerRound) {
    if (!has_feature(UFFD_FEATURE_WP_HUGETLBFS_SHMEM)) GTEST_SKIP() << "no uffd-wp on shmem";
    Mapping m(16 << 20, true);
    std::memset(m.base(), 1, m.len() / 2);  // half populated, half holes
    exact_rounds(m);
}

TEST(UffdWpSource, ConcurrentWriterNeverLosesAWrite) {
    // The migration property itself: keep a shadow copy, refresh it from the
    // pages each round reports; once the writer stops and a final round is
    // taken, the shadow must equal memory. A write lost between a snapshot
    // swap and the re-protect would leave a page stale.
    Mapping m(64 << 20, false);
    UffdWpSource src(m.base(), m.len());
    DirtyBitmap snap(src.pages(), src.page_size());
    const size_t words = m.len() / sizeof(uint64_t);
    auto* mem = reinterpret_cast<uint64_t*>(m.base());
    std::vector<uint64_t> shadow(words);
    auto copy_page = [&](size_t p) {
        for (size_t w = p * 512; w < (p + 1) * 512; ++w)
            shadow[w] = std::atomic_ref<uint64_t>(mem[w]).load(std::memory_order_relaxed);
    };

    src.start();
    for (size_t p = 0; p < m.pages(); ++p) copy_page(p);  // the full first round

    std::atomic<bool> stop{false}, done{false};
    std::atomic<uint64_t> writes{0};
    std::thread writer([&] {
        std::mt19937_64 rng(3);
        const auto deadline = std::chrono::steady_clock::now() + 3s;
        uint64_t seq = 1;
        // Hot set (a few hundred pages, rewritten constantly: races with the
        // re-protect) plus cold writes anywhere.
        while (!stop && seq < 20'000'000 && std::chrono::steady_clock::now() < deadline) {
            for (int burst = 0; burst < 256; ++burst, ++seq) {
                const uint64_t r = rng();
                const size_t page = (r & 1) ? (r >> 8) % 300 : (r >> 8) % m.pages();
                std::atomic_ref<uint64_t>(*m.word(page, (r >> 40) % 512)).store(seq, std::memory_order_relaxed);
            }
        }
        writes = seq - 1;
        done = true;
    });

    // Rounds back to back, or with a pause standing in for the time a real
    // round spends sending (a collect loop with no pause at all keeps the
    // handler waiting on the lock and starves the writer).
    std::mt19937 pause_rng(4);
    size_t rounds = 0, reported = 0;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done && rounds < 200'000 && std::chrono::steady_clock::now() < deadline) {
        src.collect(snap);
        snap.for_each_set(0, snap.pages(), copy_page);
        reported += snap.count();
        ++rounds;
        if (pause_rng() % 4 != 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_rng() % 500));
    }
    stop = true;
    writer.join();
    src.collect(snap);  // the final, stopped round
    snap.for_each_set(0, snap.pages(), copy_page);
    reported += snap.count();
    src.stop();

    size_t stale = 0;
    for (size_t p = 0; p < m.pages(); ++p)
        if (std::memcmp(&shadow[p * 512], m.base() + p * kPage, kPage) != 0) ++stale;
    std::printf("%zu rounds, %llu writes, %zu faults, %zu dirty pages reported\n", rounds,
                static_cast<unsigned long long>(writes.load()), src.faults_handled(), reported);
    EXPECT_GT(rounds, 10U);
    EXPECT_GT(writes.load(), 1000U);
    EXPECT_EQ(stale, 0U) << "pages whose last write no round reported";
}

TEST(UffdWpSource, ConcurrentRoundsReportEveryChangeInItsRound) {
    // Per-round form of the same property. After each collect k the test reads
    // every page's version word (the writer increments it). A change seen
    // between the reads after collect k-1 and after collect k happened either
    // before collect k (so snapshot k has the page) or after it (snapshot
    // k+1): it must be in one of the two. That one round of slack is inherent
    // to observing a running writer; the shadow test above is the exact check.
    Mapping m(16 << 20, false);
    UffdWpSource src(m.base(), m.len());
    const size_t pages = m.pages();
    DirtyBitmap snap(pages, src.page_size()), prev_snap(pages, src.page_size());
    auto read_versions = [&] {
        std::vector<uint64_t> v(pages);
        for (size_t p = 0; p < pages; ++p)
            v[p] = std::atomic_ref<uint64_t>(*m.word(p, 0)).load(std::memory_order_relaxed);
        return v;
    };
    std::atomic<bool> stop{false};

    src.start();
    std::vector<uint64_t> prev = read_versions();
    std::thread writer([&] {
        std::mt19937_64 rng(5);
        // Half the writes on 64 hot pages, which collect() re-protects every round.
        for (uint64_t i = 1; !stop && i < 200'000'000; ++i) {
            const size_t p = (i & 1) ? rng() % 64 : rng() % pages;
            std::atomic_ref<uint64_t>(*m.word(p, 0)).fetch_add(1, std::memory_order_relaxed);
        }
    });
    std::vector<size_t> changed_before;  // changes seen in the previous round
    size_t rounds = 0, checked = 0, missed = 0;
    auto check_round = [&](const std::vector<uint64_t>& cur) {
        for (size_t p : changed_before) {
            ++checked;
            if (!prev_snap.test(p) && !snap.test(p)) ++missed;
        }
        changed_before.clear();
        for (size_t p = 0; p < pages; ++p)
            if (cur[p] != prev[p]) changed_before.push_back(p);
    };
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (rounds < 20'000 && std::chrono::steady_clock::now() < deadline) {
        src.collect(snap);
        std::vector<uint64_t> cur = read_versions();
        check_round(cur);
        prev = std::move(cur);
        std::swap(snap, prev_snap);
        ++rounds;
        if (rounds % 2 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rounds % 300));
    }
    stop = true;
    writer.join();
    for (int tail = 0; tail < 2; ++tail) {  // writer stopped: close the last checks
        src.collect(snap);
        std::vector<uint64_t> cur = read_versions();
        check_round(cur);
        prev = std::move(cur);
        std::swap(snap, prev_snap);
    }
    EXPECT_TRUE(changed_before.empty()) << "changes after the writer stopped";
    src.stop();
    std::printf("%zu rounds, %zu page changes checked, %zu missed\n", rounds, checked, missed);
    EXPECT_GT(rounds, 10U);
    EXPECT_GT(checked, 1000U);
    EXPECT_EQ(missed, 0U);
}

TEST(UffdWpSource, StopReleasesBlockedAndLaterWriters) {
    Mapping m(4 << 20, false);
    UffdWpSource src(m.base(), m.len());
    src.start();
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        for (uint64_t i = 0; !stop && i < 100'000'000; ++i)
            std::atomic_ref<uint64_t>(*m.word(i % m.pages(), 0)).store(i, std::memory_order_relaxed);
    });
    std::this_thread::sleep_for(50ms);
    src.stop();  // the writer may be parked on a fault right now
    stop = true;
    writer.join();
    std::memset(m.base(), 7, m.len());  // no handler now: must not block
    src.stop();                         // idempotent
    // And it can track again.
    src.start();
    DirtyBitmap snap(src.pages(), src.page_size());
    write_from_thread(m, {3, 9}, 5);
    src.collect(snap);
    EXPECT_EQ(pages_of(snap), (std::set<size_t>{3, 9}));
}

TEST(UffdWpSource, FinalCollectHandsOverWithoutReprotecting) {
    Mapping m(4 << 20, false);
    UffdWpSource src(m.base(), m.len());
    src.start();
    DirtyBitmap snap(src.pages(), src.page_size());
    write_from_thread(m, {1, 5, 900}, 3);
    src.collect_final(snap);
    EXPECT_EQ(pages_of(snap), (std::set<size_t>{1, 5, 900}));
    const size_t faults = src.faults_handled();
    // Not re-protected: writing those pages again takes no fault (the guest
    // is paused in real use; this only shows the re-arm was skipped), while
    // untouched pages are still protected.
    write_from_thread(m, {1, 5, 900}, 4);
    EXPECT_EQ(src.faults_handled(), faults);
    write_from_thread(m, {2}, 4);
    EXPECT_EQ(src.faults_handled(), faults + 1);
    src.stop();
}

TEST(UffdWpSource, KernelModeWritesFailOrAreTracked) {
    Mapping m(1 << 20, false);
    int pipefd[2];
    ASSERT_EQ(::pipe(pipefd), 0);
    UniqueFd rd(pipefd[0]), wr(pipefd[1]);
    const char msg[] = "from the kernel";
    {
        // Default: UFFD_USER_MODE_ONLY, a read(2) into a protected page fails
        // loudly instead of writing untracked.
        UffdWpSource src(m.base(), m.len());
        src.start();
        ASSERT_EQ(::write(wr.get(), msg, sizeof msg), static_cast<ssize_t>(sizeof msg));
        errno = 0;
        const ssize_t n = ::read(rd.get(), m.base() + 5 * kPage, sizeof msg);
        EXPECT_EQ(n, -1);
        EXPECT_EQ(errno, EFAULT);
        src.stop();
        char drain[sizeof msg];
        (void)::read(rd.get(), drain, sizeof drain);
    }
    {
        UffdWpSource::Options opts;
        opts.kernel_writes = true;  // needs CAP_SYS_PTRACE or the sysctl
        std::unique_ptr<UffdWpSource> src;
        try {
            src = std::make_unique<UffdWpSource>(m.base(), m.len(), opts);
        } catch (const Error& e) {
            GTEST_SKIP() << e.what();
        }
        src->start();
        ASSERT_EQ(::write(wr.get(), msg, sizeof msg), static_cast<ssize_t>(sizeof msg));
        ASSERT_EQ(::read(rd.get(), m.base() + 7 * kPage, sizeof msg), static_cast<ssize_t>(sizeof msg));
        DirtyBitmap snap(src->pages(), src->page_size());
        src->collect(snap);
        EXPECT_EQ(pages_of(snap), (std::set<size_t>{7}));
        EXPECT_STREQ(m.base() + 7 * kPage, msg);
    }
}

TEST(UffdWpSource, RejectsMisuse) {
    Mapping m(1 << 20, false);
    EXPECT_THROW(UffdWpSource(m.base() + 1, kPage), Error);
    EXPECT_THROW(UffdWpSource(m.base(), 100), Error);
    EXPECT_THROW(UffdWpSource(m.base(), 0), Error);
    UffdWpSource src(m.base(), m.len());
    DirtyBitmap snap(src.pages(), src.page_size());
    EXPECT_THROW(src.collect(snap), Error);  // before start
    src.start();
    EXPECT_THROW(src.start(), Error);
    DirtyBitmap wrong(src.pages() + 1, src.page_size());
    EXPECT_THROW(src.collect(wrong), Error);
}
