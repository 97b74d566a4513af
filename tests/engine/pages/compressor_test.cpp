#include "engine/pages/compressor.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::engine;

namespace {

constexpr size_t kPage = 4096;

std::vector<std::byte> text_page(unsigned seed) {
    static const char* words[] = {"migration ", "page ", "dirty ", "round ", "bandwidth ", "guest ", "the ", "of ",
                                  "kernel: ", "INFO ", "0x7f3a ", "\n"};
    std::mt19937 rng(seed);
    std::vector<std::byte> page(kPage);
    size_t i = 0;
    while (i < kPage) {
        const char* w = words[rng() % std::size(words)];
        for (size_t k = 0; w[k] != '\0' && i < kPage; ++k) page[i++] = static_cast<std::byte>(w[k]);
    }
    return page;
}

std::vector<std::byte> random_page(unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::byte> page(kPage);
    for (auto& b : page) b = static_cast<std::byte>(rng());
    return page;
}

class CompressorTest : public ::testing::TestWithParam<Codec> {};

TEST_P(CompressorTest, RoundTripOfCompressiblePages) {
    Compressor c(GetParam());
    std::vector<std::vector<std::byte>> pages = {text_page(1), text_page(2), std::vector<std::byte>(kPage)};
    // A mostly-zero page with a little data, as a freshly touched heap page looks.
    pages.emplace_back(kPage);
    std::memcpy(pages.back().data() + 100, "hello, page", 11);
    for (const auto& page : pages) {
        std::vector<std::byte> packed(kPage);
        size_t n = c.compress(page, packed);
        ASSERT_GT(n, 0u);
        ASSERT_LT(n, kPage);
        std::vector<std::byte> back(kPage, std::byte{0xAA});
        c.decompress(std::span(packed).first(n), back);
        EXPECT_EQ(back, page);
    }
}

TEST_P(CompressorTest, IncompressibleReturnsZero) {
    Compressor c(GetParam());
    auto page = random_page(7);
    std::vector<std::byte> packed(kPage);
    EXPECT_EQ(c.compress(page, packed), 0u);
    // Even with room for an expanded result, no win means 0.
    std::vector<std::byte> big(2 * kPage);
    EXPECT_EQ(c.compress(page, big), 0u);
}

TEST_P(CompressorTest, SmallOutputMeansNoWin) {
    Compressor c(GetParam());
    auto page = text_page(3);
    std::vector<std::byte> tiny(8);
    EXPECT_EQ(c.compress(page, tiny), 0u);
}

TEST_P(CompressorTest, ReusedAcrossManyPages) {
    Compressor c(GetParam());
    std::vector<std::byte> packed(kPage), back(kPage);
    for (unsigned i = 0; i < 200; ++i) {
        auto page = (i % 5 == 0) ? random_page(i) : text_page(i);
        size_t n = c.compress(page, packed);
        if (n == 0) continue;  // sent raw
        c.decompress(std::span(packed).first(n), back);
        ASSERT_EQ(back, page) << "page " << i;
    }
}

TEST_P(CompressorTest, CorruptInputThrows) {
    Compressor c(GetParam());
    auto page = text_page(4);
    std::vector<std::byte> packed(kPage), back(kPage);
    size_t n = c.compress(page, packed);
    ASSERT_GT(n, 0u);
    packed.resize(n);

    // Garbage bytes.
    std::mt19937 rng(9);
    std::vector<std::byte> garbage(n);
    for (auto& b : garbage) b = static_cast<std::byte>(rng());
    EXPECT_THROW(c.decompress(garbage, back), ProtocolError);

    // Truncated stream.
    EXPECT_THROW(c.decompress(std::span(packed).first(n / 2), back), ProtocolError);
    EXPECT_THROW(c.decompress(std::span<const std::byte>(), back), ProtocolError);

    // Right stream, wrong announced size (both smaller and larger).
    std::vector<std::byte> small(kPage / 2), large(kPage * 2);
    EXPECT_THROW(c.decompress(packed, small), ProtocolError);
    EXPECT_THROW(c.decompress(packed, large), ProtocolError);

    // Every single-byte flip must either throw or decode to a full page, never
    // crash or overrun (run under ASan via RMIG_SANITIZE to check the latter).
    for (size_t i = 0; i < n; ++i) {
        auto bad = packed;
        bad[i] ^= std::byte{0x5A};
        try {
            c.decompress(bad, back);
        } catch (const ProtocolError&) {
        }
    }
    // The context survives errors: a good page still decodes.
    c.decompress(packed, back);
    EXPECT_EQ(back, page);
}

TEST_P(CompressorTest, ErrorsAreAlsoRmigErrors) {
    Compressor c(GetParam());
    std::vector<std::byte> junk(64, std::byte{0xFF}), back(kPage);
    EXPECT_THROW(c.decompress(junk, back), Error);
}

INSTANTIATE_TEST_SUITE_P(Codecs, CompressorTest, ::testing::Values(Codec::lz4, Codec::zstd),
                         [](const auto& p) { return std::string(to_string(p.param)); });

TEST(Compressor, LevelsAndAcceleration) {
    auto page = text_page(5);
    std::vector<std::byte> packed(kPage), back(kPage);
    for (int level : {-5, 1, 3, 9, 19}) {
        Compressor c(Codec::zstd, level);
        EXPECT_EQ(c.level(), level);
        size_t n = c.compress(page, packed);
        ASSERT_GT(n, 0u) << "zstd level " << level;
        c.decompress(std::span(packed).first(n), back);
        EXPECT_EQ(back, page);
    }
    for (int accel : {1, 8, 64}) {
        Compressor c(Codec::lz4, accel);
        size_t n = c.compress(page, packed);
        ASSERT_GT(n, 0u) << "lz4 acceleration " << accel;
        c.decompress(std::span(packed).first(n), back);
        EXPECT_EQ(back, page);
    }
    EXPECT_EQ(Compressor(Codec::zstd).level(), 1);
    EXPECT_EQ(Compressor(Codec::lz4).level(), 1);
    EXPECT_THROW(Compressor(Codec::zstd, 1000), Error);
    EXPECT_THROW(Compressor(Codec::lz4, -3), Error);
}

TEST(Compressor, NoneNeverCompresses) {
    Compressor c(Codec::none);
    auto page = text_page(6);
    std::vector<std::byte> packed(kPage), back(kPage);
    EXPECT_EQ(c.compress(page, packed), 0u);
    EXPECT_THROW(c.decompress(packed, back), Error);
}

TEST(Compressor, MoveKeepsTheContexts) {
    Compressor a(Codec::zstd, 3);
    Compressor b = std::move(a);
    auto page = text_page(8);
    std::vector<std::byte> packed(kPage), back(kPage);
    size_t n = b.compress(page, packed);
    ASSERT_GT(n, 0u);
    b.decompress(std::span(packed).first(n), back);
    EXPECT_EQ(back, page);
}

TEST(ParseCodec, KnownNames) {
    EXPECT_EQ(parse_codec("none"), Codec::none);
    EXPECT_EQ(parse_codec("off"), Codec::none);
    EXPECT_EQ(parse_codec("lz4"), Codec::lz4);
    EXPECT_EQ(parse_codec("zstd"), Codec::zstd);
    for (Codec c : {Codec::none, Codec::lz4, Codec::zstd}) EXPECT_EQ(parse_codec(std::string(to_string(c))), c);
}

TEST(ParseCodec, UnknownNameIsAClearError) {
    try {
        parse_codec("gzip");
        FAIL() << "no Error";
    } catch (const Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("'gzip'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("lz4"), std::string::npos) << msg;
        EXPECT_NE(msg.find("zstd"), std::string::npos) << msg;
    }
    EXPECT_THROW(parse_codec(""), Error);
    EXPECT_THROW(parse_codec("LZ4 "), Error);
}

}  // namespace
