#include "engine/pages/zero_page.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

using namespace rmig::engine;

namespace {

constexpr size_t kPage = 4096;

// Both implementations must agree with each other and with `expect`.
void expect_zero(const std::byte* p, size_t len, bool expect, const std::string& what) {
    EXPECT_EQ(is_zero_page(p, len), expect) << what << " (simd)";
    EXPECT_EQ(detail::is_zero_portable(p, len), expect) << what << " (portable)";
}

TEST(ZeroPage, AllZero) {
    std::vector<std::byte> page(kPage);
    expect_zero(page.data(), kPage, true, "all-zero page");
    EXPECT_EQ(classify(page.data(), kPage), PageClass::zero);
}

TEST(ZeroPage, EmptyIsZero) { expect_zero(nullptr, 0, true, "empty range"); }

// One non-zero byte anywhere must be found: each block position of the unrolled
// loop, block boundaries, first and last byte, and every bit of the byte.
TEST(ZeroPage, SingleNonZeroByteAnywhere) {
    std::vector<std::byte> page(kPage);
    for (size_t pos : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{63}, size_t{64}, size_t{127},
                       size_t{128}, size_t{255}, size_t{256}, size_t{320}, size_t{2048}, size_t{4031},
                       size_t{4032}, kPage - 2, kPage - 1}) {
        for (int bit = 0; bit < 8; ++bit) {
            page[pos] = static_cast<std::byte>(1u << bit);
            expect_zero(page.data(), kPage, false, "byte " + std::to_string(pos) + " bit " + std::to_string(bit));
            EXPECT_EQ(classify(page.data(), kPage), PageClass::normal);
            page[pos] = std::byte{0};
        }
    }
    expect_zero(page.data(), kPage, true, "restored page");
}

TEST(ZeroPage, EveryPositionOfASmallRange) {
    std::vector<std::byte> buf(1024);
    for (size_t pos = 0; pos < buf.size(); ++pos) {
        buf[pos] = std::byte{0x80};
        ASSERT_FALSE(is_zero_page(buf.data(), buf.size())) << pos;
        ASSERT_FALSE(detail::is_zero_portable(buf.data(), buf.size())) << pos;
        buf[pos] = std::byte{0};
    }
}

TEST(ZeroPage, UnalignedStartAndOddLength) {
    std::vector<std::byte> buf(kPage + 128);
    for (size_t off : {size_t{1}, size_t{7}, size_t{33}}) {
        for (size_t len : {size_t{64}, size_t{100}, size_t{kPage}, size_t{kPage + 3}}) {
            expect_zero(buf.data() + off, len, true, "zero off " + std::to_string(off));
            buf[off + len - 1] = std::byte{1};  // the last byte, possibly in the bytewise tail
            expect_zero(buf.data() + off, len, false, "last byte off " + std::to_string(off) + " len " + std::to_string(len));
            buf[off + len - 1] = std::byte{0};
            buf[off + len] = std::byte{1};  // just past the range: must not be read as part of it
            expect_zero(buf.data() + off, len, true, "byte past end off " + std::to_string(off));
            buf[off + len] = std::byte{0};
            buf[off - 1] = std::byte{1};  // just before the range
            expect_zero(buf.data() + off, len, true, "byte before start off " + std::to_string(off));
            buf[off - 1] = std::byte{0};
        }
    }
}

TEST(ZeroPage, RandomPagesMatchAReference) {
    std::mt19937_64 rng(42);
    std::vector<std::byte> page(kPage);
    for (int i = 0; i < 2000; ++i) {
        std::fill(page.begin(), page.end(), std::byte{0});
        // Mostly sparse pages (few non-zero bytes), some fully random, some zero.
        const int kind = static_cast<int>(rng() % 3);
        if (kind == 1) {
            const size_t n = rng() % 3;
            for (size_t k = 0; k < n; ++k) page[rng() % kPage] = static_cast<std::byte>(rng() % 256);
        } else if (kind == 2) {
            for (auto& b : page) b = static_cast<std::byte>(rng());
        }
        bool reference = std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; });
        expect_zero(page.data(), kPage, reference, "random page " + std::to_string(i));
        EXPECT_EQ(classify(page.data(), kPage), reference ? PageClass::zero : PageClass::normal);
    }
}

TEST(ZeroPage, ClassNames) {
    EXPECT_STREQ(to_string(PageClass::zero), "zero");
    EXPECT_STREQ(to_string(PageClass::normal), "normal");
}

}  // namespace
