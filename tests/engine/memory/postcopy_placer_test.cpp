// PostcopyPlacer with a real userfaultfd over anonymous memory: what a
// resumed post-copy relies on after a lost link. still_missing() is exactly
// the pending pages not placed yet (pushed and fetched alike), and waiting()
// the faults read from the kernel whose page has not come: a thread blocked
// on one stays blocked until the page is placed, which then wakes it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/error.hpp"
#include "engine/memory/postcopy_placer.hpp"
#include "tests/support/anon_mapping.hpp"

using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kPages = 64;

}  // namespace

TEST(PostcopyPlacer, StillMissingAndWaitingFaultsForAResume) {
    test::AnonMapping mem(kPages * kPage);
    std::memset(mem.data(), 0x11, kPages * kPage);
    std::vector<Region> regions = {{mem.data(), kPages * kPage, 0, "ram"}};
    std::vector<DirtyBitmap> pending;
    pending.emplace_back(kPages, kPage);
    for (size_t p : {3, 5, 7, 40, 63}) pending[0].set(p);

    std::unique_ptr<MissingPages> uffd;
    try {
        std::vector<std::span<std::byte>> ranges = {{mem.data(), kPages * kPage}};
        uffd = std::make_unique<MissingPages>(ranges);
    } catch (const Error& e) {
        GTEST_SKIP() << "no userfaultfd MISSING mode here: " << e.what();
    }
    drop_pages(regions, kPage, pending);
    PostcopyPlacer placer(regions, kPage, pending, *uffd);
    EXPECT_EQ(placer.missing(), 5u);

    // A guest thread touches page 5 and blocks.
    std::atomic<bool> done{false};
    std::atomic<int> seen{0};
    std::thread guest([&] {
        seen = static_cast<int>(mem.data()[5 * kPage + 9]);
        done = true;
    });
    std::vector<PageRef> faults;
    for (int i = 0; i < 50 && faults.empty(); ++i) faults = placer.next_faults(100ms);
    ASSERT_EQ(faults.size(), 1u);
    EXPECT_EQ(faults[0].page, 5u);

    // Page 7 arrives (pushed), page 40 (fetched): neither is missing any more.
    std::vector<std::byte> page(kPage, std::byte{0x77});
    EXPECT_TRUE(placer.place({0, 7}, page, false));
    EXPECT_TRUE(placer.place({0, 40}, {}, true));
    EXPECT_FALSE(placer.place({0, 40}, page, false)) << "placed twice";

    // What a resume would send for: 3, 5 and 63; the fault on 5 still waits.
    std::vector<DirtyBitmap> left = placer.still_missing();
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].count(), 3u);
    for (size_t p : {3, 5, 63}) EXPECT_TRUE(left[0].test(p)) << p;
    std::vector<PageRef> waiting = placer.waiting();
    ASSERT_EQ(waiting.size(), 1u);
    EXPECT_EQ(waiting[0].region, 0u);
    EXPECT_EQ(waiting[0].page, 5u);
    std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(done.load()) << "the guest thread read a missing page";

    // Placing it wakes the thread, which reads the placed bytes.
    std::vector<std::byte> five(kPage, std::byte{0x55});
    EXPECT_TRUE(placer.place({0, 5}, five, true));
    guest.join();
    EXPECT_EQ(seen.load(), 0x55);
    EXPECT_TRUE(placer.waiting().empty());
    EXPECT_EQ(placer.still_missing()[0].count(), 2u);
    EXPECT_EQ(placer.missing(), 2u);
    placer.place({0, 3}, page, false);
    placer.place({0, 63}, page, false);
    EXPECT_EQ(placer.missing(), 0u);
    EXPECT_EQ(placer.still_missing()[0].count(), 0u);
    uffd->release();
}
