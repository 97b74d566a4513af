// PostcopyPuller against a real userfaultfd (MissingPages) and a fake
// channel whose reads land only when waited for, so several are in flight at
// once: every pending page must be placed exactly once and equal the
// source's, pages placed by faults meanwhile are skipped, and a failed read
// ends the pull with the lane and the pages it read.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "common/error.hpp"
#include "engine/memory/postcopy_puller.hpp"
#include "tests/support/anon_mapping.hpp"

using namespace rmig;
using namespace rmig::engine;

namespace {

constexpr size_t kPage = 4096;

// Reads of a local "source" mapping: start_read queues, wait_read copies (in
// order, as rdma completes them). Counts reads and the most in flight.
class FakeReads : public transport::OneSided {
public:
    explicit FakeReads(const std::byte* source, size_t size) : source_(source), size_(size) {}
    transport::RemoteRegion expose(void*, size_t) override { return {}; }
    void write(const transport::RemoteRegion&, std::span<const transport::RegionWrite>) override {}
    void flush() override {}
    void register_local(const void* base, size_t size) override {
        std::lock_guard l(mu_);
        registered_.emplace_back(static_cast<const std::byte*>(base), size);
    }
    bool can_read() const override { return true; }
    uint64_t start_read(const transport::RemoteRegion& from, uint64_t offset, void* local, size_t len) override {
        std::lock_guard l(mu_);
        if (offset + len > from.size || from.addr + offset + len > size_)
            throw Error(cat("read of ", len, " at ", offset, " past the region"));
        bool inside = false;
        for (auto [b, n] : registered_)
            if (static_cast<std::byte*>(local) >= b && static_cast<std::byte*>(local) + len <= b + n) inside = true;
        if (!inside) throw Error("read into unregistered memory");
        if (fail_at_ && reads_ + 1 == fail_at_) {
            ++reads_;
            throw LinkError("fake channel: peer gone");
        }
        pending_.push_back({next_, source_ + from.addr + offset, static_cast<std::byte*>(local), len});
        ++reads_;
        max_in_flight_ = std::max(max_in_flight_, pending_.size());
        max_len_ = std::max(max_len_, len);
        bytes_ += len;
        return next_++;
    }
    void wait_read(uint64_t ticket) override {
        std::lock_guard l(mu_);
        while (!pending_.empty() && pending_.front().ticket <= ticket) {
            const P& p = pending_.front();
            std::memcpy(p.to, p.from, p.len);
            pending_.pop_front();
        }
    }
    size_t max_in_flight() const { return max_in_flight_; }
    size_t max_len() const { return max_len_; }
    uint64_t reads() const { return reads_; }
    uint64_t bytes() const { return bytes_; }
    uint64_t fail_at_ = 0;  // the n-th read (1-based) throws LinkError

private:
    struct P {
        uint64_t ticket;
        const std::byte* from;
        std::byte* to;
        size_t len;
    };
    const std::byte* source_;
    size_t size_;
    std::mutex mu_;
    std::vector<std::pair<const std::byte*, size_t>> registered_;
    std::deque<P> pending_;
    uint64_t next_ = 1, reads_ = 0, bytes_ = 0;
    size_t max_in_flight_ = 0, max_len_ = 0;
};

void fill(std::byte* p, size_t size) {
    for (size_t page = 0; page < size / kPage; ++page)
        for (size_t off = 0; off < kPage; off += 8) {
            uint64_t v = (uint64_t{page} << 24) ^ off ^ 0x9011e50000000000ULL;
            std::memcpy(p + page * kPage + off, &v, 8);
        }
}

// A destination region with some pages pending (dropped, caught by a uffd).
struct Pending {
    explicit Pending(size_t pages, unsigned every, unsigned seed)
        : source(pages * kPage), dest(pages * kPage), regions{{dest.data(), pages * kPage, 0, "ram"}} {
        fill(source.data(), source.size());
        std::memcpy(dest.data(), source.data(), source.size());
        pending.emplace_back(pages, kPage);
        std::mt19937 rng(seed);
        // Runs of various lengths with gaps, so runs are cut and bridged.
        for (size_t p = 0; p < pages;) {
            const size_t run = 1 + rng() % 80, gap = rng() % every;
            for (size_t k = p; k < std::min(pages, p + run); ++k) pending[0].set(k);
            p += run + gap;
        }
        std::span<std::byte> range(dest.data(), dest.size());
        uffd = std::make_unique<MissingPages>(std::span(&range, 1));
        drop_pages(regions, kPage, pending);
        placer = std::make_unique<PostcopyPlacer>(regions, kPage, pending, *uffd);
    }
    PullLane lane(FakeReads& reads, std::string name) {
        return {&reads, {transport::RemoteRegion{0, source.size(), 1}}, std::move(name)};
    }
    test::AnonMapping source, dest;
    std::vector<Region> regions;
    std::vector<DirtyBitmap> pending;
    std::unique_ptr<MissingPages> uffd;
    std::unique_ptr<PostcopyPlacer> placer;
};

TEST(PostcopyPuller, PullsEveryPendingPageOnceWithManyReadsInFlight) {
    Pending s(4096, 6, 1);
    const uint64_t pending = s.pending[0].count();
    // The guest faulted on some pages before the pull: placed already.
    uint64_t faulted = 0;
    for (uint64_t p = 0; p < 4096; p += 97)
        if (s.pending[0].test(p)) {
            ASSERT_TRUE(s.placer->place({0, p}, std::span(s.source.data() + p * kPage, kPage), true));
            ++faulted;
        }
    FakeReads a(s.source.data(), s.source.size()), b(s.source.data(), s.source.size());
    PullOptions o;
    o.depth = 8;
    o.run_bytes = 16 * kPage;
    o.max_gap_pages = 0;
    PostcopyPuller pull(s.regions, kPage, s.pending, *s.placer, {s.lane(a, "lane a"), s.lane(b, "lane b")}, o);
    pull.start();
    pull.wait();
    EXPECT_EQ(s.placer->missing(), 0u);
    EXPECT_EQ(pull.pulled_pages(), pending - faulted);
    EXPECT_EQ(std::memcmp(s.source.data(), s.dest.data(), s.source.size()), 0);
    EXPECT_GT(a.max_in_flight(), 1u) << "reads should be in flight together";
    EXPECT_LE(a.max_in_flight(), 8u);
    EXPECT_LE(b.max_in_flight(), 8u);
    EXPECT_GT(a.reads() + b.reads(), 0u);
    // No gap bridging: only pending, not-yet-placed pages were read.
    EXPECT_EQ(a.bytes() + b.bytes(), (pending - faulted) * kPage);
    EXPECT_EQ(pull.bytes_read(), (pending - faulted) * kPage);
}

TEST(PostcopyPuller, TheLaneSharingTheFaultsChannelKeepsOneSmallReadInFlight) {
    Pending s(4096, 3, 6);
    FakeReads shared(s.source.data(), s.source.size()), other(s.source.data(), s.source.size());
    PullOptions o;
    o.depth = 8;  // run_bytes 256 KiB
    PullLane first = s.lane(shared, "lane 0");
    first.shares_faults = true;
    PostcopyPuller pull(s.regions, kPage, s.pending, *s.placer, {first, s.lane(other, "lane 1")}, o);
    pull.start();
    pull.wait();
    EXPECT_EQ(s.placer->missing(), 0u);
    EXPECT_EQ(std::memcmp(s.source.data(), s.dest.data(), s.source.size()), 0);
    EXPECT_GT(shared.reads(), 0u);
    EXPECT_EQ(shared.max_in_flight(), 1u);
    EXPECT_LE(shared.max_len(), kSharedRunBytes);
    EXPECT_GT(other.max_len(), kSharedRunBytes) << "the other lane reads whole runs";
}

TEST(PostcopyPuller, BridgedGapsAreReadButNeverPlaced) {
    Pending s(2048, 4, 2);
    const uint64_t pending = s.pending[0].count();
    FakeReads a(s.source.data(), s.source.size());
    PullOptions o;
    o.depth = 4;
    o.run_bytes = 64 * kPage;
    o.max_gap_pages = 3;
    PostcopyPuller pull(s.regions, kPage, s.pending, *s.placer, {s.lane(a, "lane a")}, o);
    pull.start();
    pull.wait();
    EXPECT_EQ(s.placer->missing(), 0u);
    EXPECT_EQ(pull.pulled_pages(), pending);
    EXPECT_EQ(std::memcmp(s.source.data(), s.dest.data(), s.source.size()), 0);
    EXPECT_GT(pull.bytes_read(), pending * kPage) << "gaps of up to 3 pages should have been read across";
    // Fewer reads than runs of pending pages (which is at least pages / 80).
    EXPECT_LT(a.reads(), pending / 10);
}

TEST(PostcopyPuller, FaultsServedMeanwhileArePlacedOnceAndGuestReadsSeeTheSource) {
    Pending s(8192, 5, 3);
    const uint64_t pending = s.pending[0].count();
    FakeReads a(s.source.data(), s.source.size());
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> served{0}, wrong{0};
    // The fault thread: serves what the guest touches from the source.
    std::thread faults([&] {
        while (!stop) {
            for (PageRef f : s.placer->next_faults(std::chrono::milliseconds(20)))
                if (s.placer->place(f, std::span(s.source.data() + f.page * kPage, kPage), true)) ++served;
        }
    });
    std::vector<std::thread> guest;
    for (unsigned g = 0; g < 2; ++g)
        guest.emplace_back([&, g] {
            std::mt19937 rng(g + 7);
            for (int k = 0; k < 3000; ++k) {
                const size_t p = rng() % 8192;
                if (std::memcmp(s.dest.data() + p * kPage, s.source.data() + p * kPage, kPage) != 0) ++wrong;
            }
        });
    PullOptions o;
    o.depth = 16;
    o.run_bytes = 8 * kPage;
    PostcopyPuller pull(s.regions, kPage, s.pending, *s.placer, {s.lane(a, "lane a")}, o);
    pull.start();
    pull.wait();
    for (auto& t : guest) t.join();
    stop = true;
    faults.join();
    EXPECT_EQ(wrong.load(), 0u);
    EXPECT_EQ(s.placer->missing(), 0u);
    DestPostcopy st;
    s.placer->fill(st);
    // Each pending page placed by exactly one of the two paths.
    EXPECT_EQ(pull.pulled_pages() + st.fetched_pages, pending);
    EXPECT_EQ(std::memcmp(s.source.data(), s.dest.data(), s.source.size()), 0);
}

TEST(PostcopyPuller, AFailedReadEndsThePullNamingTheLaneAndPages) {
    Pending s(1024, 3, 4);
    FakeReads a(s.source.data(), s.source.size()), b(s.source.data(), s.source.size());
    b.fail_at_ = 3;
    PullOptions o;
    o.depth = 2;
    o.run_bytes = 4 * kPage;
    PostcopyPuller pull(s.regions, kPage, s.pending, *s.placer, {s.lane(a, "lane a"), s.lane(b, "lane b")}, o);
    pull.start();
    try {
        pull.wait();
        FAIL() << "the pull should have failed";
    } catch (const LinkError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("lane b"), std::string::npos) << what;
        EXPECT_NE(what.find("pages "), std::string::npos) << what;
        EXPECT_NE(what.find("peer gone"), std::string::npos) << what;
    }
    EXPECT_GT(s.placer->missing(), 0u) << "the other lane should have stopped too";
    s.uffd->release();  // pages left missing would block the checks below forever
}

TEST(PostcopyPuller, RefusesLanesWithoutTheSourcesRegions) {
    Pending s(64, 3, 5);
    FakeReads a(s.source.data(), s.source.size());
    PullLane bad{&a, {}, "lane a"};
    try {
        PostcopyPuller pull(s.regions, kPage, s.pending, *s.placer, {bad});
        FAIL() << "a lane without regions should be refused";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("lane a"), std::string::npos) << e.what();
    }
    EXPECT_THROW(PostcopyPuller(s.regions, kPage, s.pending, *s.placer, {}), Error);
    s.uffd->release();
}

}  // namespace
