// Page batches: what the encoder writes decodes to the same pages, and every
// malformed batch (untrusted input) is refused with a ProtocolError naming
// what is wrong.
#include <gtest/gtest.h>

#include <cstring>

#include "common/error.hpp"
#include "engine/memory/page_batch.hpp"
#include "engine/memory/page_placer.hpp"
#include "engine/pages/compressor.hpp"

using namespace rmig;
using namespace rmig::engine;

namespace {

constexpr size_t kPage = 4096;

BatchLayout layout() {
    BatchLayout l;
    l.page_size = kPage;
    l.region_pages = {256, 16};
    return l;
}

std::vector<std::byte> pattern_page(uint8_t seed) {
    std::vector<std::byte> p(kPage);
    for (size_t i = 0; i < kPage; ++i) p[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
    return p;
}

std::vector<std::byte> encode(PageBatchEncoder& enc) {
    auto s = enc.finish();
    return {s.begin(), s.end()};
}

// A valid batch of region 0: zero page 3, raw page 5, lz4 page 7.
std::vector<std::byte> sample_batch() {
    PageBatchEncoder enc;
    enc.reset(0);
    auto raw = pattern_page(1);
    auto src = pattern_page(2);
    std::vector<std::byte> packed(kPage);
    Compressor lz4(Codec::lz4);
    size_t n = lz4.compress(src, packed);
    EXPECT_GT(n, 0u);
    EXPECT_TRUE(enc.add(3, PageKind::zero, {}));
    EXPECT_TRUE(enc.add(5, PageKind::raw, raw));
    EXPECT_TRUE(enc.add(7, PageKind::lz4, std::span<const std::byte>(packed.data(), n)));
    return encode(enc);
}

void put_u32(std::vector<std::byte>& b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<std::byte>(v >> (8 * i));
}
void put_u64(std::vector<std::byte>& b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) b[at + static_cast<size_t>(i)] = static_cast<std::byte>(v >> (8 * i));
}
size_t entry_at(size_t i) { return kPageBatchHeaderSize + i * kPageEntrySize; }

std::string decode_error(const std::vector<std::byte>& b) {
    try {
        decode_page_batch(b, layout());
    } catch (const ProtocolError& e) {
        return e.what();
    }
    return "(no error)";
}

#define EXPECT_REFUSED(bytes, text)                                      \
    do {                                                                 \
        std::string msg_ = decode_error(bytes);                          \
        EXPECT_NE(msg_.find(text), std::string::npos) << msg_;           \
    } while (0)

}  // namespace

TEST(PageBatch, RoundTripPlacesEveryKind) {
    auto bytes = sample_batch();
    PageBatch b = decode_page_batch(bytes, layout());
    EXPECT_EQ(b.region, 0u);
    ASSERT_EQ(b.pages.size(), 3u);
    EXPECT_EQ(b.pages[0].page_index, 3u);
    EXPECT_EQ(b.pages[0].kind, PageKind::zero);
    EXPECT_EQ(b.pages[1].kind, PageKind::raw);
    EXPECT_EQ(b.pages[2].kind, PageKind::lz4);

    PagePlacer placer;
    std::vector<std::byte> mem(3 * kPage, std::byte{0xee});
    placer.place(b.pages[0], std::span(mem).subspan(0, kPage));
    placer.place(b.pages[1], std::span(mem).subspan(kPage, kPage));
    placer.place(b.pages[2], std::span(mem).subspan(2 * kPage, kPage));
    EXPECT_EQ(std::vector<std::byte>(mem.begin(), mem.begin() + kPage), std::vector<std::byte>(kPage));
    EXPECT_EQ(std::vector<std::byte>(mem.begin() + kPage, mem.begin() + 2 * kPage), pattern_page(1));
    EXPECT_EQ(std::vector<std::byte>(mem.begin() + 2 * kPage, mem.end()), pattern_page(2));
}

TEST(PageBatch, ZstdRoundTrip) {
    Compressor z(Codec::zstd);
    auto src = pattern_page(9);
    std::vector<std::byte> packed(kPage);
    size_t n = z.compress(src, packed);
    ASSERT_GT(n, 0u);
    PageBatchEncoder enc;
    enc.reset(1);
    enc.add(15, PageKind::zstd, std::span<const std::byte>(packed.data(), n));
    auto bytes = encode(enc);
    PageBatch b = decode_page_batch(bytes, layout());
    EXPECT_EQ(b.region, 1u);
    std::vector<std::byte> out(kPage);
    PagePlacer().place(b.pages.at(0), out);
    EXPECT_EQ(out, src);
}

TEST(PageBatch, EncoderKeepsToItsBudgetAndIsReusable) {
    PageBatchEncoder enc(kPageBatchHeaderSize + 2 * (kPageEntrySize + kPage));
    auto raw = pattern_page(3);
    enc.reset(0);
    EXPECT_TRUE(enc.add(0, PageKind::raw, raw));
    EXPECT_TRUE(enc.add(1, PageKind::raw, raw));
    EXPECT_FALSE(enc.add(2, PageKind::raw, raw));  // would exceed the budget
    EXPECT_EQ(enc.count(), 2u);
    EXPECT_EQ(enc.finish().size(), kPageBatchHeaderSize + 2 * (kPageEntrySize + kPage));
    enc.reset(1);
    EXPECT_TRUE(enc.empty());
    EXPECT_TRUE(enc.add(2, PageKind::zero, {}));
    auto bytes = encode(enc);
    EXPECT_EQ(decode_page_batch(bytes, layout()).pages.at(0).page_index, 2u);
    // A single page larger than the budget still goes out, alone.
    PageBatchEncoder tiny(16);
    tiny.reset(0);
    EXPECT_TRUE(tiny.add(0, PageKind::raw, raw));
    EXPECT_FALSE(tiny.add(1, PageKind::zero, {}));
}

// The in-place builder writes the same bytes the encoder does, for full
// batches and for short ones (whose reserved table gap is closed).
TEST(PageBatch, BuilderInPlaceMatchesTheEncoder) {
    const size_t budget = 12 + 5 * (13 + kPage);  // room for 5 raw pages
    PageBatchBuilder b(kPage, budget);
    ASSERT_EQ(b.max_pages(), 5u);
    Compressor lz4(Codec::lz4, 1);
    std::vector<std::byte> packed(kPage);
    std::vector<std::byte> buf;
    for (size_t n : {5u, 3u, 1u}) {  // full, short, single
        PageBatchEncoder enc(budget);
        enc.reset(0);
        b.start(buf, 0);
        for (size_t i = 0; i < n; ++i) {
            auto page = pattern_page(static_cast<uint8_t>(i));
            if (i % 3 == 1) std::fill(page.begin() + 64, page.end(), std::byte{0});  // compressible
            auto slot = b.slot();
            if (i % 3 == 2) {
                b.commit(10 + i, PageKind::zero, 0);
                ASSERT_TRUE(enc.add(10 + i, PageKind::zero, {}));
            } else if (size_t c = i % 3 == 1 ? lz4.compress(page, packed) : 0; c > 0) {
                std::memcpy(slot.data(), packed.data(), c);
                b.commit(10 + i, PageKind::lz4, c);
                ASSERT_TRUE(enc.add(10 + i, PageKind::lz4, std::span(packed).first(c)));
            } else {
                std::memcpy(slot.data(), page.data(), kPage);
                b.commit(10 + i, PageKind::raw, kPage);
                ASSERT_TRUE(enc.add(10 + i, PageKind::raw, page));
            }
        }
        EXPECT_EQ(b.full(), n == 5);
        const size_t size = b.finish();
        std::vector<std::byte> built(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(size));
        EXPECT_EQ(built, encode(enc)) << n << " pages";
        PageBatch decoded = decode_page_batch(built, layout());
        EXPECT_EQ(decoded.pages.size(), n);
    }
    EXPECT_THROW(PageBatchBuilder(kPage, 12 + 13 + kPage - 1), Error);
}

TEST(PageBatch, RefusesShortInput) {
    EXPECT_REFUSED(std::vector<std::byte>(5), "shorter than its 12-byte header");
}

TEST(PageBatch, RefusesBadMagic) {
    auto b = sample_batch();
    put_u32(b, 0, 0xdeadbeef);
    EXPECT_REFUSED(b, "bad magic");
}

TEST(PageBatch, RefusesUnknownRegion) {
    auto b = sample_batch();
    put_u32(b, 4, 2);
    EXPECT_REFUSED(b, "region 2 does not exist");
}

TEST(PageBatch, RefusesEmptyBatch) {
    std::vector<std::byte> b(kPageBatchHeaderSize);
    put_u32(b, 0, kPageBatchMagic);
    EXPECT_REFUSED(b, "no pages");
}

TEST(PageBatch, RefusesCountLargerThanTheBytes) {
    auto b = sample_batch();
    put_u32(b, 8, 0xffffffff);
    EXPECT_REFUSED(b, "does not fit");
}

TEST(PageBatch, RefusesPageIndexOutOfRange) {
    auto b = sample_batch();
    put_u64(b, entry_at(1), 256);  // region 0 has 256 pages
    EXPECT_REFUSED(b, "index 256 out of range");
    put_u64(b, entry_at(1), ~uint64_t{0});
    EXPECT_REFUSED(b, "out of range");
}

TEST(PageBatch, RefusesUnknownKind) {
    auto b = sample_batch();
    b[entry_at(0) + 8] = std::byte{4};
    EXPECT_REFUSED(b, "unknown kind 4");
}

TEST(PageBatch, RefusesLengthsInconsistentWithTheKind) {
    auto b = sample_batch();
    put_u32(b, entry_at(0) + 9, 1);  // zero page with a payload
    EXPECT_REFUSED(b, "(zero) has length 1");
    b = sample_batch();
    put_u32(b, entry_at(1) + 9, kPage - 1);  // raw page not a page long
    EXPECT_REFUSED(b, "(raw) has length 4095");
    b = sample_batch();
    put_u32(b, entry_at(2) + 9, kPage);  // "compressed" to a full page
    EXPECT_REFUSED(b, "(lz4) has length 4096");
    b = sample_batch();
    put_u32(b, entry_at(2) + 9, 0);
    EXPECT_REFUSED(b, "(lz4) has length 0");
}

TEST(PageBatch, RefusesPayloadsRunningPastTheEnd) {
    auto b = sample_batch();
    b.pop_back();  // (resize(size() - 1) trips a g++ 12 -Wstringop-overflow false positive under ASan)
    EXPECT_REFUSED(b, "runs past the end");
}

TEST(PageBatch, RefusesTrailingBytes) {
    auto b = sample_batch();
    b.push_back(std::byte{0});
    EXPECT_REFUSED(b, "1 trailing bytes");
}

TEST(PageBatch, PlacerRefusesCorruptCompressedPages) {
    auto b = sample_batch();
    PageBatch batch = decode_page_batch(b, layout());
    // Garbage in the lz4 payload: must not decode to a page.
    std::vector<std::byte> junk(batch.pages[2].payload.size(), std::byte{0xff});
    PageEntry e = batch.pages[2];
    e.payload = junk;
    std::vector<std::byte> out(kPage);
    PagePlacer placer;
    EXPECT_THROW(placer.place(e, out), ProtocolError);
    // A valid lz4 stream of a shorter page: decompressed size != page size.
    Compressor lz4(Codec::lz4);
    std::vector<std::byte> half(kPage / 2, std::byte{1}), packed(kPage);
    size_t n = lz4.compress(half, packed);
    ASSERT_GT(n, 0u);
    e.payload = std::span<const std::byte>(packed.data(), n);
    EXPECT_THROW(placer.place(e, out), ProtocolError);
    e.kind = PageKind::zstd;
    EXPECT_THROW(placer.place(e, out), ProtocolError);
}
