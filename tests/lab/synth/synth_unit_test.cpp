// The synthetic guest's pieces: page content (and telling a valid page from
// a wrong one without the source), the hash-list device state, page
// verification (it must catch a single flipped byte), the post-copy guest's
// readers, writer pacing and the three write patterns.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "common/error.hpp"
#include "lab/synth/guest_memory.hpp"
#include "lab/synth/guest_readers.hpp"
#include "lab/synth/hash_blob.hpp"
#include "lab/synth/verify.hpp"
#include "lab/synth/writers.hpp"

using namespace rmig;
using namespace rmig::synth;
using namespace std::chrono_literals;

namespace {

constexpr size_t kPages = 16384;  // 64 MiB

size_t distinct(DirtyLog& log) {
    std::vector<uint64_t> w(log.words());
    log.take(w.data(), w.size());
    size_t n = 0;
    for (auto x : w) n += static_cast<size_t>(__builtin_popcountll(x));
    return n;
}

}  // namespace

TEST(SynthPage, ContentNamesPageAndVersionAndIsNotZero) {
    std::vector<std::byte> a(kPageSize), b(kPageSize);
    fill_page(a.data(), 7, 1);
    fill_page(b.data(), 7, 2);
    uint64_t head[2];
    std::memcpy(head, a.data(), sizeof head);
    EXPECT_EQ(head[0], 7u);
    EXPECT_EQ(head[1], 1u);
    EXPECT_NE(page_hash(a.data()), page_hash(b.data()));
    std::vector<std::byte> zero(kPageSize);
    EXPECT_NE(std::memcmp(a.data(), zero.data(), kPageSize), 0);
}

TEST(SynthPage, ClassifiedWithoutTheSource) {
    std::vector<std::byte> page(kPageSize);
    EXPECT_EQ(classify_page(page.data(), 3), PageContent::zero);
    fill_page(page.data(), 3, 1);
    EXPECT_EQ(classify_page(page.data(), 3), PageContent::synth);
    fill_page(page.data(), 3, 77);
    EXPECT_EQ(classify_page(page.data(), 3), PageContent::synth);
    EXPECT_EQ(classify_page(page.data(), 4), PageContent::invalid);  // another page's content
    page[2000] ^= std::byte{1};
    EXPECT_EQ(classify_page(page.data(), 3), PageContent::invalid);
    std::vector<std::byte> torn(kPageSize);
    fill_page(torn.data(), 3, 77);
    std::memset(torn.data() + 2048, 0, 2048);  // half placed
    EXPECT_EQ(classify_page(torn.data(), 3), PageContent::invalid);
    std::vector<std::byte> stray(kPageSize);
    stray[4095] = std::byte{9};
    EXPECT_EQ(classify_page(stray.data(), 0), PageContent::invalid);
}

// Without post-copy underneath: the readers check random pages of a copy of
// the guest against its hash list, flag the one corrupted page, and the
// count stops growing once they are stopped.
TEST(SynthGuestReaders, CheckPagesAgainstTheListAndFlagABadOne) {
    GuestMemory src(kPages * kPageSize, 0.25, 2);
    for (size_t p = 0; p < kPages; p += 3) src.write(p);
    Mapping dst(kPages * kPageSize);
    std::memcpy(dst.data(), src.mapping().data(), dst.size());
    HashList list = decode_hash_blob(encode_hash_blob(kPageSize, 0, src.hashes()));
    {
        GuestReaders r(dst, 2, 0);
        EXPECT_FALSE(r.started());
        r.start(list);
        // Until they checked more pages than the guest has (bounded: a loaded
        // machine may give them little CPU; a fixed sleep flaked at load).
        for (int i = 0; i < 10000 && (r.stats().checked <= kPages || r.stats().zero == 0); ++i)
            std::this_thread::sleep_for(1ms);
        r.stop();
        auto s = r.stats();
        EXPECT_GT(s.checked, kPages);
        EXPECT_EQ(s.invalid, 0u);
        EXPECT_GT(s.zero, 0u);
        EXPECT_EQ(r.stats().checked, s.checked);
    }
    dst.page(77)[100] ^= std::byte{0x40};
    GuestReaders r(dst, 1, 200000);  // paced: 200k pages/s
    r.start(list);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 3000 && r.stats().invalid == 0; ++i) std::this_thread::sleep_for(1ms);
    r.abandon();
    r.stop();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto s = r.stats();
    ASSERT_GE(s.invalid, 1u);
    EXPECT_EQ(s.first_invalid[0], 77u);
    EXPECT_LE(static_cast<double>(s.checked), 200000 * secs + 2);
    EXPECT_TRUE(r.abandoned());
    GuestReaders wrong(dst, 1, 0);
    list.hashes.pop_back();
    EXPECT_THROW(wrong.start(list), Error);
    EXPECT_FALSE(wrong.started());
}

TEST(SynthGuest, ZeroFractionAndHashesMatchMemory) {
    GuestMemory mem(kPages * kPageSize, 0.25, 2);
    std::vector<uint64_t> now;
    mem.hash_all(now, 2);
    EXPECT_EQ(now, mem.hashes());
    std::vector<std::byte> zero(kPageSize);
    size_t zeros = 0;
    for (size_t p = 0; p < kPages; ++p) zeros += std::memcmp(mem.mapping().page(p), zero.data(), kPageSize) == 0;
    EXPECT_GT(zeros, kPages / 5);
    EXPECT_LT(zeros, kPages * 3 / 10);
    mem.write(5);
    mem.hash_all(now, 1);
    EXPECT_EQ(now, mem.hashes());
}

TEST(SynthHashBlob, RoundTripsAndRejectsBadInput) {
    std::vector<uint64_t> h = {1, 2, 3, 0xffffffffffffffffULL};
    auto blob = encode_hash_blob(kPageSize, 42, h);
    HashList l = decode_hash_blob(blob);
    EXPECT_EQ(l.page_size, kPageSize);
    EXPECT_EQ(l.writes, 42u);
    EXPECT_EQ(l.hashes, h);
    auto shorter = blob;
    shorter.pop_back();
    EXPECT_THROW(decode_hash_blob(shorter), Error);
    auto bad_magic = blob;
    bad_magic[0] = std::byte{0};
    EXPECT_THROW(decode_hash_blob(bad_magic), Error);
    EXPECT_THROW(decode_hash_blob({blob.data(), 8}), Error);
    EXPECT_LE(max_guest_bytes() / kPageSize * 8 + kHashBlobHeader, (16u << 20) - 64);
}

TEST(SynthVerify, CatchesOneFlippedByteAndAWrongList) {
    GuestMemory src(kPages * kPageSize, 0.25, 2);
    Mapping dst(kPages * kPageSize);
    std::memcpy(dst.data(), src.mapping().data(), dst.size());
    HashList list = decode_hash_blob(encode_hash_blob(kPageSize, 0, src.hashes()));
    Verdict ok = verify_pages(dst, list, 2);
    EXPECT_EQ(ok.verified, kPages);
    EXPECT_EQ(ok.mismatches, 0u);
    EXPECT_GT(ok.zero, 0u);

    dst.page(1234)[4095] ^= std::byte{1};
    Verdict bad = verify_pages(dst, list, 2);
    EXPECT_EQ(bad.mismatches, 1u);
    ASSERT_EQ(bad.first_bad.size(), 1u);
    EXPECT_EQ(bad.first_bad[0], 1234u);

    list.hashes.pop_back();
    EXPECT_THROW(verify_pages(dst, list, 1), Error);
}

TEST(SynthWriters, PacedRateIsNotExceededAndHashesStayExact) {
    GuestMemory mem(kPages * kPageSize, 0.25, 2);
    WriterConfig c;
    c.writers = 2;
    c.pages_per_second = 20000;
    Writers w(mem, c);
    auto t0 = std::chrono::steady_clock::now();
    w.start();
    std::this_thread::sleep_for(300ms);
    w.stop();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Credit starts at zero and is capped at 20 ms, so never more than rate * time.
    EXPECT_LE(static_cast<double>(w.writes()), 20000 * secs + 2);
    EXPECT_GT(w.writes(), 0u);
    std::vector<uint64_t> now;
    mem.hash_all(now, 2);
    EXPECT_EQ(now, mem.hashes());
}

TEST(SynthWriters, PatternsShapeTheDirtySet) {
    auto run = [](Pattern p) {
        GuestMemory mem(kPages * kPageSize, 0, 1);
        DirtyLog log(kPages);
        WriterConfig c;
        c.pages_per_second = 1e9;  // as fast as it goes; stopped by the write count
        c.pattern = p;
        Writers w(mem, c, &log);
        w.start();
        for (int i = 0; i < 2000 && w.writes() < 8000; ++i) std::this_thread::sleep_for(1ms);
        w.stop();
        return std::pair<size_t, uint64_t>(distinct(log), w.writes());
    };
    auto [seq, seq_writes] = run(Pattern::sequential);
    auto [uni, uni_writes] = run(Pattern::uniform);
    auto [hot, hot_writes] = run(Pattern::hot);
    ASSERT_GE(seq_writes, 8000u);
    ASSERT_GE(uni_writes, 8000u);
    ASSERT_GE(hot_writes, 8000u);
    // Sequential never repeats a page before wrapping; uniform repeats a few;
    // hot (90% of writes in 10% of memory) repeats most.
    EXPECT_EQ(seq, std::min<uint64_t>(seq_writes, kPages));
    EXPECT_LT(hot, uni * 2 / 3) << "hot " << hot << " uniform " << uni;
    EXPECT_LT(hot, static_cast<size_t>(kPages / 10 + hot_writes / 10 + 64));
}

TEST(SynthWriters, RejectsBadConfig) {
    GuestMemory mem(64 * kPageSize, 0, 1);
    WriterConfig c;
    c.writers = 0;
    EXPECT_THROW(Writers(mem, c), Error);
    c.writers = 1;
    c.hot_fraction = 0;
    EXPECT_THROW(Writers(mem, c), Error);
    EXPECT_THROW(parse_pattern("zipf"), Error);
}
