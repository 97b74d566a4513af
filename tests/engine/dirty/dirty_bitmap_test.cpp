#include "engine/dirty/dirty_bitmap.hpp"

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::engine;

namespace {

std::vector<size_t> set_pages(const DirtyBitmap& b, size_t begin, size_t end) {
    std::vector<size_t> out;
    b.for_each_set(begin, end, [&](size_t p) { out.push_back(p); });
    return out;
}

std::vector<size_t> model_pages(const std::vector<bool>& m, size_t begin, size_t end) {
    std::vector<size_t> out;
    for (size_t p = begin; p < end && p < m.size(); ++p)
        if (m[p]) out.push_back(p);
    return out;
}

}  // namespace

TEST(DirtyBitmap, GeometryAndSingleBits) {
    DirtyBitmap b(130, 4096);
    EXPECT_EQ(b.pages(), 130U);
    EXPECT_EQ(b.page_size(), 4096U);
    EXPECT_EQ(b.words(), 3U);
    EXPECT_EQ(b.count(), 0U);
    for (size_t p : {0UL, 63UL, 64UL, 129UL}) b.set(p);
    b.set(63);  // twice is once
    EXPECT_TRUE(b.test(0));
    EXPECT_TRUE(b.test(63));
    EXPECT_TRUE(b.test(64));
    EXPECT_TRUE(b.test(129));
    EXPECT_FALSE(b.test(1));
    EXPECT_FALSE(b.test(128));
    EXPECT_EQ(b.count(), 4U);
    EXPECT_EQ(b.count(1, 129), 2U);
    EXPECT_EQ(b.count(63, 65), 2U);
    b.clear_all();
    EXPECT_EQ(b.count(), 0U);
}

TEST(DirtyBitmap, RejectsBadPageSize) {
    EXPECT_THROW(DirtyBitmap(10, 0), Error);
    EXPECT_THROW(DirtyBitmap(10, 3000), Error);
}

TEST(DirtyBitmap, FillMarksExactlyThePages) {
    for (size_t pages : {0UL, 1UL, 63UL, 64UL, 65UL, 1000UL}) {
        DirtyBitmap b(pages);
        b.fill();
        EXPECT_EQ(b.count(), pages) << pages;
        EXPECT_EQ(set_pages(b, 0, pages + 100).size(), pages) << pages;
    }
}

TEST(DirtyBitmap, ConcurrentSettersLoseNoBit) {
    // Both threads hit the same words (interleaved pages) so fetch_or is what
    // keeps each other's bits; a plain read-modify-write would lose some.
    constexpr size_t kPages = 1 << 20;
    DirtyBitmap b(kPages);
    auto setter = [&](size_t parity) {
        for (size_t p = parity; p < kPages; p += 2) b.set(p);
    };
    std::thread t1(setter, 0), t2(setter, 1);
    t1.join();
    t2.join();
    EXPECT_EQ(b.count(), kPages);
}

TEST(DirtyBitmap, TakeMovesBitsAndLeavesLiveEmpty) {
    DirtyBitmap live(200), snap(200);
    snap.set(5);  // replaced, not merged
    live.set(1);
    live.set(150);
    live.take(snap);
    EXPECT_EQ(live.count(), 0U);
    EXPECT_EQ(set_pages(snap, 0, 200), (std::vector<size_t>{1, 150}));
    live.set(7);  // the next round
    EXPECT_FALSE(snap.test(7));
    DirtyBitmap wrong(201);
    EXPECT_THROW(live.take(wrong), Error);
    DirtyBitmap wrong_ps(200, 8192);
    EXPECT_THROW(live.take(wrong_ps), Error);
}

TEST(DirtyBitmap, TakeWhileSettingLosesNothing) {
    // A writer sets every page once while the main thread keeps taking
    // snapshots: the union of all snapshots must be every page, each once.
    constexpr size_t kPages = 1 << 18;
    DirtyBitmap live(kPages), snap(kPages);
    std::vector<int> seen(kPages, 0);
    std::atomic<bool> done{false};
    std::thread writer([&] {
        for (size_t p = 0; p < kPages; ++p) live.set((p * 7919) % kPages);  // scattered, bijective
        done = true;
    });
    for (int rounds = 0; rounds < 100000; ++rounds) {
        const bool last = done.load();
        live.take(snap);
        snap.for_each_set(0, kPages, [&](size_t p) { ++seen[p]; });
        if (last) break;
    }
    writer.join();
    live.take(snap);
    snap.for_each_set(0, kPages, [&](size_t p) { ++seen[p]; });
    for (size_t p = 0; p < kPages; ++p) ASSERT_EQ(seen[p], 1) << "page " << p;
}

TEST(DirtyBitmap, ForEachSetMatchesModel) {
    std::mt19937_64 rng(42);
    for (int iter = 0; iter < 200; ++iter) {
        const size_t pages = rng() % 700;
        const double density = std::uniform_real_distribution<double>(0, 1)(rng);
        DirtyBitmap b(pages);
        std::vector<bool> model(pages, false);
        for (size_t p = 0; p < pages; ++p)
            if (std::uniform_real_distribution<double>(0, 1)(rng) < density) {
                b.set(p);
                model[p] = true;
            }
        for (int q = 0; q < 20; ++q) {
            size_t lo = pages ? rng() % (pages + 2) : 0, hi = pages ? rng() % (pages + 70) : 5;
            if (lo > hi) std::swap(lo, hi);
            ASSERT_EQ(set_pages(b, lo, hi), model_pages(model, lo, hi))
                << "pages " << pages << " range [" << lo << "," << hi << ")";
            ASSERT_EQ(b.count(lo, hi), model_pages(model, lo, hi).size());
        }
        ASSERT_EQ(b.count(), model_pages(model, 0, pages).size());
    }
}

TEST(DirtyBitmap, ForEachRunGroupsContiguousPages) {
    DirtyBitmap b(300);
    for (size_t p : {0UL, 1UL, 2UL, 62UL, 63UL, 64UL, 65UL, 100UL, 299UL}) b.set(p);
    std::vector<std::pair<size_t, size_t>> runs;
    b.for_each_run(0, 300, [&](size_t first, size_t n) { runs.emplace_back(first, n); });
    EXPECT_EQ(runs, (std::vector<std::pair<size_t, size_t>>{{0, 3}, {62, 4}, {100, 1}, {299, 1}}));
    runs.clear();
    b.for_each_run(1, 64, [&](size_t first, size_t n) { runs.emplace_back(first, n); });
    EXPECT_EQ(runs, (std::vector<std::pair<size_t, size_t>>{{1, 2}, {62, 2}}));
}

TEST(DirtyBitmap, MergeFromUsesKvmBitOrder) {
    DirtyBitmap b(130);
    // Bit i of word w is page w*64+i.
    const uint64_t log[3] = {0x1ULL | (1ULL << 63), 0x5ULL, ~0ULL};
    b.merge_from(log, 3);
    // Word 2 covers pages 128..191 but only 128 and 129 exist.
    EXPECT_EQ(set_pages(b, 0, 130), (std::vector<size_t>{0, 63, 64, 66, 128, 129}));
    EXPECT_EQ(b.count(), 6U);
    const uint64_t more[1] = {0x2ULL};  // shorter log: ORs into word 0 only
    b.merge_from(more, 1);
    EXPECT_TRUE(b.test(1));
    EXPECT_EQ(b.count(), 7U);
    const uint64_t too_long[4] = {};
    EXPECT_THROW(b.merge_from(too_long, 4), Error);
}

TEST(DirtyBitmap, MoveLeavesSourceEmpty) {
    DirtyBitmap a(100);
    a.set(3);
    DirtyBitmap b(std::move(a));
    EXPECT_TRUE(b.test(3));
    EXPECT_EQ(a.pages(), 0U);  // NOLINT(bugprone-use-after-move): documented state
    EXPECT_EQ(a.count(), 0U);
}
