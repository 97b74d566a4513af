// Per-core cost of page classification and compression next to memcpy.
//
// Zero detection: is_zero_page over every 4 KiB page of a 64 MiB buffer (far
// beyond the caches, as guest RAM is), against a memcpy of the same 64 MiB.
// Target: zero detection >= 0.8 of memcpy's bytes/s. Three page mixes:
//   all zero      - every byte read (the worst case for time per page)
//   last byte set - every byte read and the page rejected at its end
//   random        - early exit in the first cache line (the common normal page)
//
// Compression: lz4 (acceleration 1) and zstd (level 1) on a realistic mix of
// pages (1/4 zero, 1/2 text-like, 1/4 random), one page per call as a worker
// does. Bytes/s count input (uncompressed) bytes for both directions; the
// "ratio" counter is compressed/raw over the pages that compressed. In the
// engine zero pages never reach the compressor; they are in the mix because
// the brief asks for it, and they flatter the numbers (see the *_NoZero runs).
//
// Read the results as ratios within one run, never as absolute targets.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "engine/pages/compressor.hpp"
#include "engine/pages/zero_page.hpp"

namespace {

using rmig::engine::Codec;
using rmig::engine::Compressor;

constexpr size_t kPage = 4096;
constexpr size_t kBufBytes = 64u << 20;

uint64_t next(uint64_t& x) {  // xorshift64*: the same bytes every run
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return x * 0x2545f4914f6cdd1dULL;
}

void fill_random(std::byte* p, size_t n, uint64_t seed) {
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = next(x);
        std::memcpy(p + i, &v, std::min<size_t>(8, n - i));
    }
}

// Log lines, identifiers and small numbers: compresses roughly 2-4x, like page cache text and heap strings.
void fill_text(std::byte* p, size_t n, uint64_t seed) {
    static const char* words[] = {"migration", "page",  "dirty",   "round", "bandwidth", "guest",  "the",
                                  "of",        "kernel", "INFO",   "WARN",  "socket",    "thread", "0x7f3a",
                                  "=",         "{",      "}",      "\n",    "ms",        "user",   "request"};
    uint64_t x = seed | 1;
    size_t i = 0;
    while (i < n) {
        uint64_t r = next(x);
        const char* w = words[r % std::size(words)];
        for (size_t k = 0; w[k] != '\0' && i < n; ++k) p[i++] = static_cast<std::byte>(w[k]);
        if (i < n && (r >> 32) % 5 == 0) p[i++] = static_cast<std::byte>('0' + (r >> 40) % 10);
        if (i < n) p[i++] = static_cast<std::byte>(' ');
    }
}

enum class Mix { all_zero, last_byte, random, realistic, realistic_no_zero };

std::vector<std::byte> make_pages(size_t bytes, Mix mix) {
    std::vector<std::byte> buf(bytes);  // zero-filled and touched
    const size_t pages = bytes / kPage;
    for (size_t i = 0; i < pages; ++i) {
        std::byte* page = buf.data() + i * kPage;
        switch (mix) {
            case Mix::all_zero: break;
            case Mix::last_byte: page[kPage - 1] = std::byte{1}; break;
            case Mix::random: fill_random(page, kPage, i + 1); break;
            case Mix::realistic:
            case Mix::realistic_no_zero: {
                const size_t kind = mix == Mix::realistic ? i % 4 : 1 + i % 3;  // 0 zero, 1-2 text, 3 random
                if (kind == 1 || kind == 2) fill_text(page, kPage, i + 1);
                if (kind == 3) fill_random(page, kPage, i + 1);
                break;
            }
        }
    }
    return buf;
}

int64_t as_count(size_t n) { return static_cast<int64_t>(n); }

void BM_ZeroDetect(benchmark::State& state, Mix mix) {
    auto buf = make_pages(kBufBytes, mix);
    size_t zeros = 0;
    for (auto _ : state) {
        zeros = 0;
        for (size_t off = 0; off < kBufBytes; off += kPage) zeros += rmig::engine::is_zero_page(buf.data() + off, kPage);
        benchmark::DoNotOptimize(zeros);
    }
    state.SetBytesProcessed(state.iterations() * as_count(kBufBytes));
    state.counters["zero_pages"] = static_cast<double>(zeros);
}

void BM_ZeroDetectPortable(benchmark::State& state) {
    auto buf = make_pages(kBufBytes, Mix::all_zero);
    for (auto _ : state) {
        size_t zeros = 0;
        for (size_t off = 0; off < kBufBytes; off += kPage)
            zeros += rmig::engine::detail::is_zero_portable(buf.data() + off, kPage);
        benchmark::DoNotOptimize(zeros);
    }
    state.SetBytesProcessed(state.iterations() * as_count(kBufBytes));
}

// Baseline: copy the same 64 MiB (bytes/s counts the source bytes once).
void BM_Memcpy(benchmark::State& state) {
    auto src = make_pages(kBufBytes, Mix::random);
    std::vector<std::byte> dst(kBufBytes);
    std::memcpy(dst.data(), src.data(), kBufBytes);  // touch both
    for (auto _ : state) {
        std::memcpy(dst.data(), src.data(), kBufBytes);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * as_count(kBufBytes));
}

// 16 MiB of pages: big enough to leave L2, small enough to set up quickly.
constexpr size_t kCompressBytes = 16u << 20;

void BM_Compress(benchmark::State& state, Codec codec, Mix mix) {
    auto buf = make_pages(kCompressBytes, mix);
    Compressor c(codec, 1);
    std::vector<std::byte> out(kPage);
    size_t packed = 0, packed_raw = 0;
    for (auto _ : state) {
        packed = packed_raw = 0;
        for (size_t off = 0; off < kCompressBytes; off += kPage) {
            size_t n = c.compress(std::span(buf).subspan(off, kPage), out);
            benchmark::DoNotOptimize(out.data());
            if (n != 0) {
                packed += n;
                packed_raw += kPage;
            }
        }
    }
    state.SetBytesProcessed(state.iterations() * as_count(kCompressBytes));
    state.counters["ratio"] = packed_raw ? static_cast<double>(packed) / static_cast<double>(packed_raw) : 1.0;
    state.counters["compressed_pages_pct"] = 100.0 * static_cast<double>(packed_raw) / static_cast<double>(kCompressBytes);
}

void BM_Decompress(benchmark::State& state, Codec codec, Mix mix) {
    auto buf = make_pages(kCompressBytes, mix);
    Compressor c(codec, 1);
    // Pre-compress; pages that did not shrink would be sent raw and never
    // decompressed, so they are left out, and bytes/s counts the decompressed
    // bytes of the pages that did compress.
    struct Packed { size_t off, len; };
    std::vector<std::byte> store(kCompressBytes);
    std::vector<Packed> packed;
    size_t pos = 0;
    for (size_t off = 0; off < kCompressBytes; off += kPage) {
        size_t n = c.compress(std::span(buf).subspan(off, kPage), std::span(store).subspan(pos, kPage));
        if (n != 0) {
            packed.push_back({pos, n});
            pos += n;
        }
    }
    std::vector<std::byte> page(kPage);
    for (auto _ : state) {
        for (const auto& p : packed) {
            c.decompress(std::span(store).subspan(p.off, p.len), page);
            benchmark::DoNotOptimize(page.data());
        }
    }
    state.SetBytesProcessed(state.iterations() * as_count(packed.size() * kPage));
}

}  // namespace

BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ZeroDetect, all_zero, Mix::all_zero)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ZeroDetect, last_byte_set, Mix::last_byte)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ZeroDetect, random, Mix::random)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ZeroDetectPortable)->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(BM_Compress, lz4_mix, Codec::lz4, Mix::realistic)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Compress, zstd1_mix, Codec::zstd, Mix::realistic)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Compress, lz4_NoZero, Codec::lz4, Mix::realistic_no_zero)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Compress, zstd1_NoZero, Codec::zstd, Mix::realistic_no_zero)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decompress, lz4_mix, Codec::lz4, Mix::realistic)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decompress, zstd1_mix, Codec::zstd, Mix::realistic)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decompress, lz4_NoZero, Codec::lz4, Mix::realistic_no_zero)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decompress, zstd1_NoZero, Codec::zstd, Mix::realistic_no_zero)->Unit(benchmark::kMillisecond);
