#include "engine/pages/adaptive_compressor.hpp"

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
constexpr size_t kChunk = 256 * 1024;

using Bytes = std::vector<std::byte>;

Bytes text(size_t n, unsigned seed) {
    static const char* words[] = {"migration ", "page ", "dirty ",   "round ", "bandwidth ", "guest ",
                                  "the ",       "of ",   "kernel: ", "INFO ",  "0x7f3a ",    "\n"};
    std::mt19937 rng(seed);
    Bytes b(n);
    for (size_t i = 0; i < n;) {
        const char* w = words[rng() % std::size(words)];
        for (size_t k = 0; w[k] != '\0' && i < n; ++k) b[i++] = static_cast<std::byte>(w[k]);
    }
    return b;
}

Bytes random_bytes(size_t n, unsigned seed) {
    std::mt19937_64 rng(seed);
    Bytes b(n);
    for (auto& x : b) x = static_cast<std::byte>(rng());
    return b;
}

// Program-like binary: small little-endian integers, user-space pointers and
// a few recurring instruction byte sequences, as code and heap pages hold.
Bytes binary(size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    static const unsigned char ops[][4] = {
        {0x48, 0x89, 0xe5, 0x00}, {0x48, 0x83, 0xec, 0x08}, {0xe8, 0, 0, 0}, {0xc3, 0x90, 0x90, 0x90}};
    Bytes b(n);
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v = 0;
        switch (rng() % 4) {
            case 0:
                v = rng() % 256;
                break;
            case 1:
                v = 0x00007f3a00000000ULL | (rng() & 0xfffff8);
                break;
            case 2:
                std::memcpy(&v, ops[rng() % 4], 4);
                break;
            default:
                v = rng();
                break;
        }
        std::memcpy(b.data() + i, &v, 8);
    }
    return b;
}

// Per page: zero, text, binary or random.
Bytes mixed(size_t n, unsigned seed) {
    Bytes b(n);
    for (size_t off = 0, i = 0; off < n; off += kPage, ++i) {
        const size_t len = std::min(kPage, n - off);
        Bytes page;
        switch ((seed + i) % 4) {
            case 0:
                continue;
            case 1:
                page = text(len, seed + static_cast<unsigned>(i));
                break;
            case 2:
                page = binary(len, seed + static_cast<unsigned>(i));
                break;
            default:
                page = random_bytes(len, seed + static_cast<unsigned>(i));
                break;
        }
        std::memcpy(b.data() + off, page.data(), len);
    }
    return b;
}

// A machine of known speed: compressing `n` bytes with codec c takes
// n / speed[c], and the wall clock moves only when a test says so.
class FakeTiming : public AdaptiveCompressor::Timing {
public:
    double lz4 = 2e9, zstd = 400e6;  // bytes/s
    mutable uint64_t now = 1'000'000'000;
    mutable std::vector<std::pair<Codec, size_t>> calls;

    uint64_t now_ns() const override { return now; }
    uint64_t compress_ns(Codec c, size_t in, uint64_t) const override {
        calls.emplace_back(c, in);
        return static_cast<uint64_t>(static_cast<double>(in) / (c == Codec::lz4 ? lz4 : zstd) * 1e9);
    }
    void advance(double seconds) const { now += static_cast<uint64_t>(seconds * 1e9); }
    size_t full_chunk_calls(size_t chunk) const {
        size_t k = 0;
        for (const auto& c : calls) k += c.second == chunk;
        return k;
    }
};

AdaptiveCompressor::Options with(CompressionMode mode, const FakeTiming* t = nullptr) {
    AdaptiveCompressor::Options o;
    o.mode = mode;
    o.timing = t;
    return o;
}

// Encodes then decodes `chunk`, checks the result and returns the codec used.
Codec round_trip(AdaptiveCompressor& ac, const Bytes& chunk) {
    Bytes out;
    auto e = ac.encode(chunk, out);
    Bytes back(chunk.size(), std::byte{0xAA});
    if (e.codec == Codec::none) {
        EXPECT_EQ(e.size, chunk.size());
        decode(e.codec, chunk, back);
    } else {
        EXPECT_LE(e.size, chunk.size() * 97 / 100);
        EXPECT_GE(out.size(), e.size);
        decode(e.codec, std::span(out).first(e.size), back);
    }
    EXPECT_EQ(back, chunk);
    return e.codec;
}

uint64_t total_chunks(const CompressionStats& s) {
    return s.chunks[0] + s.chunks[1] + s.chunks[2];
}

TEST(CompressionMode, ParsesEveryNameAndNamesTheChoices) {
    EXPECT_EQ(parse_compression_mode("auto"), CompressionMode::automatic);
    EXPECT_EQ(parse_compression_mode("none"), CompressionMode::none);
    EXPECT_EQ(parse_compression_mode("off"), CompressionMode::none);
    EXPECT_EQ(parse_compression_mode("lz4"), CompressionMode::lz4);
    EXPECT_EQ(parse_compression_mode("zstd"), CompressionMode::zstd);
    for (auto m : {CompressionMode::automatic, CompressionMode::none, CompressionMode::lz4, CompressionMode::zstd})
        EXPECT_EQ(parse_compression_mode(to_string(m)), m);
    try {
        parse_compression_mode("gzip");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'gzip'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("auto, none, off, lz4 or zstd"), std::string::npos) << e.what();
    }
    EXPECT_THROW(parse_compression_mode(""), Error);
    EXPECT_THROW(parse_compression_mode("LZ4"), Error);
}

TEST(AdaptiveCompressor, RejectsBadOptions) {
    auto o = with(CompressionMode::automatic);
    o.max_ratio = 0;
    EXPECT_THROW(AdaptiveCompressor{o}, Error);
    o = with(CompressionMode::automatic);
    o.probe_budget = 2;
    EXPECT_THROW(AdaptiveCompressor{o}, Error);
    o = with(CompressionMode::automatic);
    o.zstd_level = 99;
    EXPECT_THROW(AdaptiveCompressor{o}, Error);
    AdaptiveCompressor ac;
    EXPECT_THROW(ac.set_link_rate(-1), Error);
}

struct Kind {
    const char* name;
    Bytes (*make)(size_t, unsigned);
};
const Kind kKinds[] = {{"zero", [](size_t n, unsigned) { return Bytes(n); }},
                       {"text", text},
                       {"binary", binary},
                       {"random", random_bytes},
                       {"mixed", mixed}};

class RoundTrip : public ::testing::TestWithParam<CompressionMode> {};

TEST_P(RoundTrip, EveryKindAndSize) {
    AdaptiveCompressor ac(with(GetParam()));
    ac.set_link_rate(100e6);  // slow: auto compresses what it can
    uint64_t in = 0;
    for (size_t size : {size_t{1} << 20, kChunk, size_t{100'003}, size_t{1000}, size_t{1}}) {
        for (const auto& k : kKinds) {
            SCOPED_TRACE(std::string(k.name) + " " + std::to_string(size));
            Codec c = round_trip(ac, k.make(size, 7));
            in += size;
            const bool random = std::string(k.name) == "random";
            if (GetParam() == CompressionMode::none || random) {
                EXPECT_EQ(c, Codec::none);
            } else if (size >= kChunk && GetParam() != CompressionMode::automatic) {
                EXPECT_NE(c, Codec::none);
            }
        }
    }
    const auto& s = ac.stats();
    EXPECT_EQ(s.in_bytes, in);
    EXPECT_EQ(total_chunks(s), 25u);
    EXPECT_LE(s.wire_bytes, in);
}

TEST_P(RoundTrip, ChunksOfChangingKindReuseOneBuffer) {
    AdaptiveCompressor ac(with(GetParam()));
    ac.set_link_rate(100e6);
    Bytes out;
    Bytes back(kChunk);
    uint64_t wire = 0;
    for (unsigned i = 0; i < 40; ++i) {
        auto chunk = kKinds[i % 5].make(kChunk, i);
        auto e = ac.encode(chunk, out);
        if (e.codec != Codec::none) {
            EXPECT_GE(out.size(), kChunk);  // grown once, never shrunk
        }
        decode(e.codec, e.codec == Codec::none ? std::span<const std::byte>(chunk) : std::span(out).first(e.size),
               back);
        ASSERT_EQ(back, chunk) << "chunk " << i;
        wire += e.size;
    }
    EXPECT_EQ(ac.stats().wire_bytes, wire);
    EXPECT_EQ(ac.stats().in_bytes, 40 * kChunk);
}

INSTANTIATE_TEST_SUITE_P(Modes, RoundTrip,
                         ::testing::Values(CompressionMode::automatic, CompressionMode::none, CompressionMode::lz4,
                                           CompressionMode::zstd),
                         [](const auto& p) { return std::string(to_string(p.param)); });

// decode() into the middle of a guarded buffer: whatever the input, the
// guard bytes around `out` must survive.
class Guarded {
public:
    explicit Guarded(size_t n) : buf_(n + 2 * kGuard, std::byte{0x5C}) {}
    std::span<std::byte> out() { return std::span(buf_).subspan(kGuard, buf_.size() - 2 * kGuard); }
    bool intact() const {
        for (size_t i = 0; i < kGuard; ++i)
            if (buf_[i] != std::byte{0x5C} || buf_[buf_.size() - 1 - i] != std::byte{0x5C}) return false;
        return true;
    }

private:
    static constexpr size_t kGuard = 4096;
    Bytes buf_;
};

class Decode : public ::testing::TestWithParam<Codec> {};

TEST_P(Decode, CorruptTruncatedAndMissizedInputThrowsWithinBounds) {
    const Codec codec = GetParam();
    AdaptiveCompressor ac(with(codec == Codec::lz4 ? CompressionMode::lz4 : CompressionMode::zstd));
    auto chunk = text(kChunk, 3);
    Bytes out;
    auto e = ac.encode(chunk, out);
    ASSERT_EQ(e.codec, codec);
    const Bytes packed(out.begin(), out.begin() + static_cast<ptrdiff_t>(e.size));

    auto expect_rejected = [&](std::span<const std::byte> in, size_t out_size, const char* what) {
        Guarded g(out_size);
        EXPECT_THROW(decode(codec, in, g.out()), ProtocolError) << what;
        EXPECT_TRUE(g.intact()) << what;
    };
    expect_rejected(random_bytes(e.size, 9), kChunk, "garbage");
    expect_rejected(std::span(packed).first(packed.size() / 2), kChunk, "truncated");
    expect_rejected(std::span(packed).first(1), kChunk, "one byte");
    expect_rejected({}, kChunk, "empty");
    expect_rejected(packed, kChunk / 2, "announced size too small");
    expect_rejected(packed, kChunk - 1, "announced size one short");
    expect_rejected(packed, kChunk + 1, "announced size one long");
    expect_rejected(packed, 2 * kChunk, "announced size too large");
    expect_rejected(random_bytes(kChunk, 4), kChunk, "compressed as large as the chunk");

    // Flips all over the stream: each decodes exactly or throws, never overruns.
    Guarded g(kChunk);
    for (size_t i = 0; i < packed.size(); i += std::max<size_t>(1, packed.size() / 500)) {
        auto bad = packed;
        bad[i] ^= std::byte{0x41};
        try {
            decode(codec, bad, g.out());
        } catch (const ProtocolError&) {
        }
        ASSERT_TRUE(g.intact()) << "flip at " << i;
    }
    // And a good chunk still decodes afterwards on this thread's context.
    Bytes back(kChunk);
    decode(codec, packed, back);
    EXPECT_EQ(back, chunk);
}

INSTANTIATE_TEST_SUITE_P(Codecs, Decode, ::testing::Values(Codec::lz4, Codec::zstd),
                         [](const auto& p) { return std::string(to_string(p.param)); });

TEST(Decode, RawChunkMustMatchTheAnnouncedSize) {
    auto chunk = random_bytes(1000, 1);
    Guarded g(999);
    EXPECT_THROW(decode(Codec::none, chunk, g.out()), ProtocolError);
    EXPECT_TRUE(g.intact());
    Guarded g2(1001);
    EXPECT_THROW(decode(Codec::none, chunk, g2.out()), ProtocolError);
    EXPECT_TRUE(g2.intact());
    Bytes back(1000);
    decode(Codec::none, chunk, back);
    EXPECT_EQ(back, chunk);
    decode(Codec::none, {}, {});
}

TEST(Decode, UnknownCodecIsAProtocolError) {
    Bytes in(10), out(100);
    EXPECT_THROW(decode(static_cast<Codec>(7), in, out), ProtocolError);
}

// --- the adaptive choice, on a machine of known speed ---

TEST(AutoChoice, RawUntilTheLinkRateIsKnown) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    Bytes out;
    EXPECT_EQ(ac.encode(text(kChunk, 1), out).codec, Codec::none);
    EXPECT_EQ(ac.stats().reason, "none: no link rate yet");
    EXPECT_GT(ac.stats().speed[1], 0);  // measured meanwhile
    EXPECT_GT(ac.stats().speed[2], 0);
}

TEST(AutoChoice, OffOnADatacenterLink) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    ac.set_link_rate(100e9);
    Bytes out;
    for (unsigned i = 0; i < 64; ++i) EXPECT_EQ(ac.encode(text(kChunk, i), out).codec, Codec::none);
    const auto& s = ac.stats();
    EXPECT_EQ(s.current, Codec::none);
    EXPECT_EQ(s.chunks[0], 64u);
    EXPECT_EQ(s.wire_bytes, s.in_bytes);
    EXPECT_EQ(s.reason.rfind("none: link 100.0 GB/s vs lz4 2.0 GB/s in", 0), 0u) << s.reason;
    // Probes kept both codecs measured, at a bounded cost: one 64 KiB sample
    // every 8th chunk (plus the first chunk's two).
    EXPECT_GT(s.probes, 0u);
    EXPECT_LE(s.probes, 64u / 8 + 2);
    EXPECT_EQ(t.full_chunk_calls(kChunk), 0u);
}

TEST(AutoChoice, ZstdOnASlowLinkWithCompressibleData) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    ac.set_link_rate(100e6);
    for (unsigned i = 0; i < 32; ++i) round_trip(ac, text(kChunk, i));
    const auto& s = ac.stats();
    EXPECT_EQ(s.current, Codec::zstd) << s.reason;
    EXPECT_GE(s.chunks[2], 31u);  // from the first chunk on, once the probes measured
    EXPECT_LT(s.wire_bytes, s.in_bytes / 2);
    // CPU-bound: zstd's 400 MB/s beats lz4's 100 MB/s / ratio 0.40.
    EXPECT_EQ(s.reason.rfind("zstd: zstd 400 MB/s in (ratio 0.1", 0), 0u) << s.reason;
    EXPECT_NE(s.reason.find(") > link 100 MB/s; lz4 2"), std::string::npos) << s.reason;
    // Link-bound below 400 x 0.19 = 76 MB/s.
    t.advance(1);
    ac.set_link_rate(50e6);
    EXPECT_EQ(s.reason.rfind("zstd: link 50 MB/s / ratio 0.1", 0), 0u) << s.reason;
    EXPECT_NE(s.reason.find(" in < zstd 400 MB/s; lz4 "), std::string::npos) << s.reason;
}

TEST(AutoChoice, Lz4OnAFasterLinkWhereZstdWouldBeTheBottleneck) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    ac.set_link_rate(1e9);  // zstd 400 MB/s < link; lz4 2 GB/s with ratio ~0.4 delivers 2 GB/s
    for (unsigned i = 0; i < 32; ++i) round_trip(ac, text(kChunk, i));
    const auto& s = ac.stats();
    EXPECT_EQ(s.current, Codec::lz4) << s.reason;
    EXPECT_GE(s.chunks[1], 31u);
    EXPECT_EQ(s.reason.rfind("lz4: lz4 2.0 GB/s in (ratio 0.", 0), 0u) << s.reason;
    EXPECT_NE(s.reason.find("> link 1.0 GB/s; zstd 400 MB/s"), std::string::npos) << s.reason;
}

TEST(AutoChoice, FollowsTheLinkRate) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    Bytes out;
    auto chunk = text(kChunk, 5);
    ac.set_link_rate(100e6);
    ac.encode(chunk, out);
    EXPECT_EQ(ac.stats().current, Codec::zstd);
    t.advance(1);
    ac.set_link_rate(1e9);
    EXPECT_EQ(ac.stats().current, Codec::lz4);
    t.advance(1);
    ac.set_link_rate(25e9);
    EXPECT_EQ(ac.stats().current, Codec::none);
    t.advance(1);
    ac.set_link_rate(100e6);
    EXPECT_EQ(ac.stats().current, Codec::zstd);
}

TEST(AutoChoice, SendersShareTheLink) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    Bytes out;
    ac.encode(text(kChunk, 5), out);
    ac.set_link_rate(10e9, 1);
    EXPECT_EQ(ac.stats().current, Codec::none);
    t.advance(1);
    ac.set_link_rate(10e9, 100);  // 100 MB/s each
    EXPECT_EQ(ac.stats().link, 100e6);
    EXPECT_EQ(ac.stats().current, Codec::zstd);
}

TEST(AutoChoice, RandomDataGoesRawAtLittleCost) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    ac.set_link_rate(100e6);
    for (unsigned i = 0; i < 64; ++i) EXPECT_EQ(round_trip(ac, random_bytes(kChunk, i)), Codec::none) << i;
    const auto& s = ac.stats();
    EXPECT_EQ(s.chunks[0], 64u);
    EXPECT_EQ(s.current, Codec::none) << s.reason;
    EXPECT_EQ(t.full_chunk_calls(kChunk), 0u);  // the probes alone told
    EXPECT_GT(s.ratio[1], 0.99);
    EXPECT_GT(s.ratio[2], 0.99);
}

TEST(AutoChoice, IncompressibleStretchThenCompressibleAgain) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    ac.set_link_rate(100e6);
    for (unsigned i = 0; i < 16; ++i) round_trip(ac, text(kChunk, i));
    ASSERT_EQ(ac.stats().current, Codec::zstd);
    // Random data: a few chunks fail (cheaply, on the pre-test), the ratio
    // estimate rises and the choice turns to raw.
    unsigned first_raw = 0;
    for (unsigned i = 0; i < 48; ++i) {
        round_trip(ac, random_bytes(kChunk, i));
        if (!first_raw && ac.stats().current == Codec::none) first_raw = i + 1;
    }
    EXPECT_EQ(ac.stats().current, Codec::none) << ac.stats().reason;
    EXPECT_GT(first_raw, 0u);
    EXPECT_LE(first_raw, 8u);
    // Compressible again: the probes (every 8th chunk, alternating codecs)
    // notice and compression comes back; zstd, the better one on this link,
    // wins back once its own probes have seen the change.
    unsigned back_on = 0, zstd_again = 0;
    for (unsigned i = 0; i < 96 && !zstd_again; ++i) {
        const Codec c = round_trip(ac, text(kChunk, 100 + i));
        if (!back_on && c != Codec::none) back_on = i + 1;
        if (c == Codec::zstd) zstd_again = i + 1;
    }
    EXPECT_GT(back_on, 0u) << ac.stats().reason;
    EXPECT_LE(back_on, 16u);
    EXPECT_GT(zstd_again, 0u) << ac.stats().reason;
    EXPECT_LE(zstd_again, 64u);
}

TEST(AutoChoice, AlternatingChunksDoNotFoolTheProbes) {
    // Every other chunk random: a probe every 8th chunk exactly would only
    // ever see text for the codec not in use, and an estimate of it probed
    // apart from the codec in use would swing; either kept switching codecs
    // (19 switches in this test before the jitter and the paired probes).
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    ac.set_link_rate(100e6);
    const auto txt = text(kChunk, 1), rnd = random_bytes(kChunk, 2);
    unsigned switches = 0;
    Codec last = Codec::none;
    for (unsigned i = 0; i < 200; ++i) {
        round_trip(ac, i % 2 ? rnd : txt);
        switches += ac.stats().current != last;
        last = ac.stats().current;
    }
    const auto& s = ac.stats();
    EXPECT_EQ(switches, 1u) << s.reason;       // raw -> zstd, then never again
    EXPECT_EQ(s.chunks[2], 100u) << s.reason;  // every text chunk with zstd
    EXPECT_GE(s.chunks[0], 100u);              // every random chunk raw
}

TEST(ForcedCodec, BacksOffOnIncompressibleDataThenRetries) {
    FakeTiming t;
    auto o = with(CompressionMode::zstd, &t);
    o.pretest = false;  // count full attempts only
    AdaptiveCompressor ac(o);
    Bytes out;
    auto rnd = random_bytes(kChunk, 1);
    std::vector<bool> tried;
    for (unsigned i = 0; i < 4 + 8 + 1 + 16 + 1; ++i) {
        const size_t before = t.full_chunk_calls(kChunk);
        EXPECT_EQ(ac.encode(rnd, out).codec, Codec::none);
        tried.push_back(t.full_chunk_calls(kChunk) > before);
    }
    // 4 failures in a row, 8 raw, 1 retry, 16 raw (doubled), 1 retry.
    std::vector<bool> expect(4, true);
    expect.insert(expect.end(), 8, false);
    expect.push_back(true);
    expect.insert(expect.end(), 16, false);
    expect.push_back(true);
    EXPECT_EQ(tried, expect);
    EXPECT_EQ(ac.stats().incompressible, 6u);
    EXPECT_EQ(ac.stats().skipped, 24u);
    EXPECT_EQ(ac.stats().reason, "zstd: forced; 6 chunks in a row did not compress: next 32 raw");
    // Compressible data after the backoff: compressed again, backoff reset.
    auto txt = text(kChunk, 2);
    unsigned raw_before = 0;
    while (ac.encode(txt, out).codec == Codec::none) ++raw_before;
    EXPECT_EQ(raw_before, 32u);  // the third backoff ran its course
    EXPECT_EQ(ac.stats().reason, "zstd: forced");
    EXPECT_EQ(ac.stats().probes, 0u);  // a forced codec is never probed
}

TEST(ForcedCodec, PretestSkipsRandomChunksAfterAFailure) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::lz4, &t));
    Bytes out;
    // The first random chunk gets a full attempt (compressible streams pay no pre-test)...
    EXPECT_EQ(ac.encode(random_bytes(kChunk, 1), out).codec, Codec::none);
    EXPECT_EQ(t.full_chunk_calls(kChunk), 1u);
    EXPECT_EQ(ac.stats().incompressible, 1u);
    // ...the next only the 16 KiB pre-test.
    t.calls.clear();
    EXPECT_EQ(ac.encode(random_bytes(kChunk, 2), out).codec, Codec::none);
    ASSERT_EQ(t.calls.size(), 1u);
    EXPECT_EQ(t.calls[0].second, 16u * 1024);
    EXPECT_EQ(ac.stats().skipped, 1u);
    // Half zero pages, half random: the pieces see both halves, so it is tried and compresses.
    t.calls.clear();
    auto half = random_bytes(kChunk, 3);
    std::fill(half.begin(), half.begin() + kChunk / 2, std::byte{0});
    EXPECT_EQ(round_trip(ac, half), Codec::lz4);
    EXPECT_EQ(t.calls.size(), 2u);
    EXPECT_EQ(t.full_chunk_calls(kChunk), 1u);
    // Compressible again: no pre-test.
    t.calls.clear();
    EXPECT_EQ(round_trip(ac, text(kChunk, 4)), Codec::lz4);
    EXPECT_EQ(t.calls.size(), 1u);
}

TEST(ForcedCodec, NoneNeverCompresses) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::none, &t));
    ac.set_link_rate(1e6);
    Bytes out;
    EXPECT_EQ(ac.encode(Bytes(kChunk), out).codec, Codec::none);
    EXPECT_TRUE(t.calls.empty());
    EXPECT_EQ(ac.stats().reason, "none: forced");
}

TEST(AutoChoice, ALinkRateMeasuredWhileCpuBoundIsALowerBound) {
    FakeTiming t;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    ac.set_link_rate(120e6);
    Bytes out;
    auto chunk = text(kChunk, 1);
    // Busy compressing: the wall clock moves only by the compression time, so
    // the wire carried all zstd produced (400 MB/s x ratio 0.19 = 76 MB/s).
    // Feeding that back as the link rate must not ratchet the estimate down.
    for (unsigned i = 0; i < 20; ++i) {
        ac.encode(chunk, out);
        t.advance(static_cast<double>(kChunk) / t.zstd);
    }
    ASSERT_EQ(ac.stats().current, Codec::zstd) << ac.stats().reason;
    ac.set_link_rate(76e6);
    EXPECT_EQ(ac.stats().link, 120e6);
    EXPECT_NE(ac.stats().reason.find("> link >= 120 MB/s"), std::string::npos) << ac.stats().reason;
    // A higher report is taken at once.
    ac.set_link_rate(150e6);
    EXPECT_EQ(ac.stats().link, 150e6);
    // Idle between chunks (waiting for the link): a lower report is believed.
    for (unsigned i = 0; i < 4; ++i) {
        ac.encode(chunk, out);
        t.advance(0.05);
    }
    ac.set_link_rate(76e6);
    EXPECT_EQ(ac.stats().link, 76e6);
    EXPECT_EQ(ac.stats().reason.find(">="), std::string::npos) << ac.stats().reason;
}

TEST(AutoChoice, ProbesStayWithinTheirTimeBudget) {
    FakeTiming t;
    t.zstd = 50e6;  // 64 KiB probe = 1.3 ms
    t.lz4 = 50e6;
    AdaptiveCompressor ac(with(CompressionMode::automatic, &t));
    ac.set_link_rate(100e9);
    Bytes out;
    auto chunk = text(kChunk, 1);
    // No wall time passes: only the initial 20 ms of probing is allowed.
    for (unsigned i = 0; i < 800; ++i) ac.encode(chunk, out);
    const uint64_t after_burst = ac.stats().probes;
    EXPECT_LE(after_burst, 2u + 16);
    // 1 s later, 2% of it (20 ms) is available again.
    t.advance(1);
    for (unsigned i = 0; i < 800; ++i) ac.encode(chunk, out);
    EXPECT_GT(ac.stats().probes, after_burst);
    EXPECT_LE(ac.stats().probes, after_burst + 16);
}

TEST(AutoChoice, RealClockSmoke) {
    // The shipped measurement path: no machine compresses text anywhere near
    // 100 GB/s, and every machine beats 10 MB/s with it.
    auto chunk = text(1 << 20, 1);
    Bytes out;
    AdaptiveCompressor fast;
    fast.set_link_rate(100e9);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(fast.encode(chunk, out).codec, Codec::none);
    AdaptiveCompressor slow;
    slow.set_link_rate(10e6);
    for (int i = 0; i < 8; ++i) round_trip(slow, chunk);
    EXPECT_NE(slow.stats().current, Codec::none) << slow.stats().reason;
    EXPECT_GT(slow.stats().chunks[1] + slow.stats().chunks[2], 6u);
}

}  // namespace
