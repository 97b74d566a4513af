#include "engine/dirty/bitmap_source.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::engine;

TEST(BitmapSource, CollectReturnsWhatWasSubmittedThisRound) {
    BitmapSource src(256);
    DirtyBitmap snap(256);
    src.start();
    const uint64_t r1a[2] = {0x3, 0};
    const uint64_t r1b[4] = {0, 0, 0, 1ULL << 63};  // page 255
    src.submit(r1a, 2);
    src.submit(r1b, 4);  // accumulates
    src.collect(snap);
    EXPECT_EQ(snap.count(), 3U);
    EXPECT_TRUE(snap.test(0));
    EXPECT_TRUE(snap.test(1));
    EXPECT_TRUE(snap.test(255));

    src.collect(snap);  // nothing new
    EXPECT_EQ(snap.count(), 0U);

    const uint64_t r2[1] = {0x10};
    src.submit(r2, 1);
    src.collect(snap);
    EXPECT_EQ(snap.count(), 1U);
    EXPECT_TRUE(snap.test(4));
    src.stop();
}

TEST(BitmapSource, StartDropsEarlierSubmissions) {
    BitmapSource src(64);
    const uint64_t w[1] = {~0ULL};
    src.submit(w, 1);
    src.start();
    DirtyBitmap snap(64);
    src.collect(snap);
    EXPECT_EQ(snap.count(), 0U);
}

TEST(BitmapSource, RejectsWrongGeometry) {
    BitmapSource src(64);
    const uint64_t w[2] = {};
    EXPECT_THROW(src.submit(w, 2), Error);
    DirtyBitmap snap(65);
    EXPECT_THROW(src.collect(snap), Error);
}

TEST(BitmapSource, ConcurrentSubmitAndCollectLoseNothing) {
    constexpr size_t kPages = 64 * 64;
    BitmapSource src(kPages);
    src.start();
    std::thread vmm([&] {
        // One page per submitted log, every page once.
        std::vector<uint64_t> log(kPages / 64);
        for (size_t p = 0; p < kPages; ++p) {
            std::fill(log.begin(), log.end(), 0);
            log[p / 64] = 1ULL << (p % 64);
            src.submit(log.data(), log.size());
        }
    });
    DirtyBitmap snap(kPages), all(kPages);
    size_t total = 0;
    for (int i = 0; i < 1000000 && total < kPages; ++i) {
        src.collect(snap);
        total += snap.count();
        snap.for_each_set(0, kPages, [&](size_t p) { all.set(p); });
    }
    vmm.join();
    src.collect(snap);
    total += snap.count();
    snap.for_each_set(0, kPages, [&](size_t p) { all.set(p); });
    EXPECT_EQ(all.count(), kPages);  // every page
    EXPECT_EQ(total, kPages);        // none twice
}
