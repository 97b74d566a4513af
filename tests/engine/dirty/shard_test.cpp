#include "engine/dirty/shard.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::engine;

namespace {

// The contract shared by both splitters (see shard.hpp).
void expect_valid_split(const std::vector<PageRange>& s, size_t begin, size_t end, size_t k) {
    ASSERT_LE(s.size(), k);
    if (begin >= end) {
        EXPECT_TRUE(s.empty());
        return;
    }
    ASSERT_FALSE(s.empty());
    EXPECT_EQ(s.front().begin, begin);
    EXPECT_EQ(s.back().end, end);
    for (size_t i = 0; i < s.size(); ++i) {
        EXPECT_LT(s[i].begin, s[i].end) << "shard " << i << " is empty";
        if (i > 0) {
            EXPECT_EQ(s[i].begin, s[i - 1].end) << "gap or overlap before shard " << i;
            EXPECT_EQ(s[i].begin % 64, 0U) << "cut " << s[i].begin << " splits a bitmap word";
        }
    }
}

}  // namespace

TEST(ShardPages, EvenSplitOnWordBoundaries) {
    auto s = shard_pages(0, 64 * 8, 4);
    EXPECT_EQ(s, (std::vector<PageRange>{{0, 128}, {128, 256}, {256, 384}, {384, 512}}));
}

TEST(ShardPages, UnevenWordsDifferByAtMostOne) {
    auto s = shard_pages(0, 64 * 10, 4);  // 10 words among 4: 2,3,2,3
    expect_valid_split(s, 0, 640, 4);
    ASSERT_EQ(s.size(), 4U);
    for (auto& r : s) {
        EXPECT_GE(r.size(), 128U);
        EXPECT_LE(r.size(), 192U);
    }
}

TEST(ShardPages, MoreWorkersThanWords) {
    auto s = shard_pages(0, 130, 8);  // 3 words
    expect_valid_split(s, 0, 130, 8);
    EXPECT_EQ(s, (std::vector<PageRange>{{0, 64}, {64, 128}, {128, 130}}));
    EXPECT_EQ(shard_pages(10, 20, 5), (std::vector<PageRange>{{10, 20}}));  // inside one word
}

TEST(ShardPages, EmptyRangeAndZeroWorkers) {
    EXPECT_TRUE(shard_pages(0, 0, 4).empty());
    EXPECT_TRUE(shard_pages(100, 50, 4).empty());
    EXPECT_THROW(shard_pages(0, 100, 0), Error);
}

TEST(ShardPages, UnalignedEndsAndRandomRanges) {
    std::mt19937_64 rng(7);
    for (int i = 0; i < 2000; ++i) {
        size_t b = rng() % 5000, e = rng() % 5000;
        if (b > e) std::swap(b, e);
        const size_t k = 1 + rng() % 20;
        auto s = shard_pages(b, e, k);
        expect_valid_split(s, b, e, k);
        if (::testing::Test::HasFailure()) {
            FAIL() << "range [" << b << "," << e << ") k=" << k;
        }
    }
}

TEST(BalanceByDirty, ClusteredDirtyPagesSpreadOverWorkers) {
    // All dirty pages in the first 1024 of 64 Ki pages: an even page split
    // would give worker 0 everything.
    DirtyBitmap b(1 << 16);
    for (size_t p = 0; p < 1024; ++p) b.set(p);
    auto s = balance_by_dirty_count(b, 0, b.pages(), 4);
    expect_valid_split(s, 0, b.pages(), 4);
    ASSERT_EQ(s.size(), 4U);
    for (auto& r : s) EXPECT_EQ(b.count(r.begin, r.end), 256U);
}

TEST(BalanceByDirty, NoDirtyPagesFallsBackToEvenSplit) {
    DirtyBitmap b(640);
    EXPECT_EQ(balance_by_dirty_count(b, 0, 640, 4), shard_pages(0, 640, 4));
}

TEST(BalanceByDirty, SingleDirtyWordGivesOneShard) {
    DirtyBitmap b(64 * 100);
    for (size_t p = 640; p < 704; ++p) b.set(p);  // one full word, word 10
    auto s = balance_by_dirty_count(b, 0, b.pages(), 8);
    EXPECT_EQ(s, (std::vector<PageRange>{{0, 64 * 100}}));
}

TEST(BalanceByDirty, EdgeCases) {
    DirtyBitmap b(100);
    b.set(99);
    EXPECT_TRUE(balance_by_dirty_count(b, 50, 50, 3).empty());
    EXPECT_TRUE(balance_by_dirty_count(b, 100, 200, 3).empty());  // past the bitmap
    EXPECT_EQ(balance_by_dirty_count(b, 0, 500, 3), (std::vector<PageRange>{{0, 100}}));  // end clamped
    EXPECT_THROW(balance_by_dirty_count(b, 0, 100, 0), Error);
}

TEST(BalanceByDirty, RandomPatternsStayWithinOneWordOfFair) {
    std::mt19937_64 rng(99);
    for (int iter = 0; iter < 300; ++iter) {
        const size_t pages = 1 + rng() % 20000;
        DirtyBitmap b(pages);
        // Dense patches on a sparse background.
        const size_t patches = rng() % 5;
        for (size_t i = 0; i < patches; ++i) {
            const size_t at = rng() % pages, len = rng() % 2000;
            for (size_t p = at; p < std::min(pages, at + len); ++p) b.set(p);
        }
        for (size_t i = 0; i < pages / 50; ++i) b.set(rng() % pages);
        size_t lo = rng() % pages, hi = rng() % (pages + 1);
        if (lo > hi) std::swap(lo, hi);
        const size_t k = 1 + rng() % 16;
        auto s = balance_by_dirty_count(b, lo, hi, k);
        expect_valid_split(s, lo, hi, k);
        const size_t total = b.count(lo, hi);
        if (total == 0) continue;
        size_t sum = 0;
        for (auto& r : s) {
            const size_t c = b.count(r.begin, r.end);
            sum += c;
            EXPECT_GT(c, 0U) << "a shard with nothing to do";
            // Within one word's worth (64) of the fair share, both sides.
            EXPECT_LE(c * k, total + 64 * k) << "iter " << iter;
            if (s.size() == k) {
                EXPECT_GE(c * k + 64 * k, total) << "iter " << iter;
            }
        }
        EXPECT_EQ(sum, total);
        if (::testing::Test::HasFailure()) FAIL() << "iter " << iter << " [" << lo << "," << hi << ") k=" << k;
    }
}
