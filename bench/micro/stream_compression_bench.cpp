// Per-core cost and ratio of compressing stream chunks (AdaptiveCompressor),
// next to a memcpy of the same chunks measured first in the same run.
//
// 32 MiB of each data kind (beyond the caches, as a migration stream is), cut
// into 1 MiB chunks (256 KiB for the *_256K runs), one encode() per chunk:
//   zero    - all zero bytes
//   text    - log lines and identifiers (page cache text, heap strings)
//   code    - real program code and data: the bytes of qemu-system-x86_64 and
//             the system's libcrypto/libc (whatever of them is installed),
//             else this benchmark's own executable
//   random  - incompressible (encrypted or already compressed memory)
//   mix     - per 4 KiB page: 1/8 zero, 3/8 text, 2/8 code, 2/8 random
//   alt     - whole chunks, alternately text and random (so the backoff after
//             several incompressible chunks in a row never starts: what the
//             pre-test alone saves)
// Counters: bytes/s counts input bytes per second of CPU time; ratio = wire
// bytes / input bytes (raw chunks count in full); x_memcpy = this benchmark's
// input bytes per CPU second over BM_Memcpy's. BM_Encode* runs a forced codec
// (pre-test on, as shipped); *_NoPretest the same without the pre-test;
// BM_Attempt is one full compression attempt per chunk (no pre-test, no
// backoff); BM_Sample compresses 64 KiB pieces as the probes do; BM_Auto runs
// the adaptive choice at a fixed link rate.
//
// Read the results as ratios within one run, never as absolute targets.
#include <benchmark/benchmark.h>
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <span>
#include <vector>

#include "engine/pages/adaptive_compressor.hpp"
#include "engine/pages/compressor.hpp"

namespace {

using rmig::engine::AdaptiveCompressor;
using rmig::engine::Codec;
using rmig::engine::CompressionMode;
using rmig::engine::Compressor;

constexpr size_t kPage = 4096;
constexpr size_t kBufBytes = 32u << 20;
constexpr size_t kChunk = 1u << 20;

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

// The same word salad as pages_bench: compresses roughly 3-4x.
void fill_text(std::byte* p, size_t n, uint64_t seed) {
    static const char* words[] = {"migration", "page",   "dirty", "round", "bandwidth", "guest",  "the",
                                  "of",        "kernel", "INFO",  "WARN",  "socket",    "thread", "0x7f3a",
                                  "=",         "{",      "}",     "\n",    "ms",        "user",   "request"};
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

// Real machine code: installed binaries, concatenated (repeated if short).
const std::vector<std::byte>& code_bytes() {
    static const std::vector<std::byte> bytes = [] {
        std::vector<std::byte> all;
        for (const char* path : {"/usr/bin/qemu-system-x86_64", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
                                 "/usr/lib/x86_64-linux-gnu/libc.so.6", "/proc/self/exe"}) {
            std::ifstream f(path, std::ios::binary);
            std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
            const auto* b = reinterpret_cast<const std::byte*>(data.data());
            all.insert(all.end(), b, b + data.size());
            if (all.size() >= kBufBytes) break;
        }
        if (all.empty()) all.resize(kPage, std::byte{0x90});
        const size_t have = all.size();
        while (all.size() < kBufBytes)
            all.insert(all.end(), all.begin(),
                       all.begin() + static_cast<ptrdiff_t>(std::min(have, kBufBytes - all.size())));
        all.resize(kBufBytes);
        return all;
    }();
    return bytes;
}

enum class Kind { zero, text, code, random, mix, alt };

std::vector<std::byte> make(Kind kind) {
    std::vector<std::byte> buf(kBufBytes);
    switch (kind) {
        case Kind::zero:
            break;
        case Kind::text:
            fill_text(buf.data(), kBufBytes, 1);
            break;
        case Kind::code:
            buf = code_bytes();
            break;
        case Kind::random:
            fill_random(buf.data(), kBufBytes, 2);
            break;
        case Kind::mix:
            for (size_t off = 0, i = 0; off < kBufBytes; off += kPage, ++i) {
                uint64_t x = i + 1;
                switch (next(x) % 8) {
                    case 0:
                        break;
                    case 1:
                    case 2:
                    case 3:
                        fill_text(buf.data() + off, kPage, i + 3);
                        break;
                    case 4:
                    case 5:
                        std::memcpy(buf.data() + off, code_bytes().data() + off, kPage);
                        break;
                    default:
                        fill_random(buf.data() + off, kPage, i + 5);
                        break;
                }
            }
            break;
        case Kind::alt:
            for (size_t off = 0, i = 0; off < kBufBytes; off += kChunk, ++i) {
                if (i % 2)
                    fill_random(buf.data() + off, kChunk, i + 7);
                else
                    fill_text(buf.data() + off, kChunk, i + 7);
            }
            break;
    }
    return buf;
}

const std::vector<std::byte>& data(Kind kind) {
    static std::map<Kind, std::vector<std::byte>> cache;
    auto it = cache.find(kind);
    if (it == cache.end()) it = cache.emplace(kind, make(kind)).first;
    return it->second;
}

int64_t as_count(size_t n) {
    return static_cast<int64_t>(n);
}

// Times the benchmark loop itself (thread CPU time, as bytes_per_second) so
// every benchmark can report x_memcpy.
class Rate {
public:
    Rate() : t0_(now()) {}
    double bytes_per_s(double bytes) const { return bytes / (now() - t0_); }

private:
    static double now() {
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
    }
    double t0_;
};

double g_memcpy_rate = 0;  // BM_Memcpy runs first (registration order)

void report(benchmark::State& state, const Rate& rate, size_t in, size_t wire) {
    state.SetBytesProcessed(state.iterations() * as_count(kBufBytes));
    const double r = rate.bytes_per_s(static_cast<double>(state.iterations()) * static_cast<double>(kBufBytes));
    if (g_memcpy_rate > 0) state.counters["x_memcpy"] = r / g_memcpy_rate;
    if (in) state.counters["ratio"] = static_cast<double>(wire) / static_cast<double>(in);
}

// Baseline: copy the same 32 MiB chunk by chunk (as sending raw would, once).
void BM_Memcpy(benchmark::State& state) {
    const auto& src = data(Kind::random);
    std::vector<std::byte> dst(kChunk);
    Rate rate;
    for (auto _ : state) {
        for (size_t off = 0; off < kBufBytes; off += kChunk) {
            std::memcpy(dst.data(), src.data() + off, kChunk);
            benchmark::ClobberMemory();
        }
    }
    g_memcpy_rate = rate.bytes_per_s(static_cast<double>(state.iterations()) * static_cast<double>(kBufBytes));
    report(state, rate, 0, 0);
}

void run_encode(benchmark::State& state, AdaptiveCompressor& ac, Kind kind, size_t chunk) {
    const auto& buf = data(kind);
    std::vector<std::byte> out;
    size_t in = 0, wire = 0;
    Rate rate;
    for (auto _ : state) {
        for (size_t off = 0; off < kBufBytes; off += chunk) {
            auto e = ac.encode(std::span(buf).subspan(off, chunk), out);
            benchmark::DoNotOptimize(out.data());
            in += chunk;
            wire += e.size;
        }
    }
    report(state, rate, in, wire);
    const auto& s = ac.stats();
    state.counters["raw_pct"] =
        100.0 * static_cast<double>(s.chunks[0]) / static_cast<double>(s.chunks[0] + s.chunks[1] + s.chunks[2]);
}

void BM_Encode(benchmark::State& state, CompressionMode mode, int zstd_level, Kind kind, bool pretest, size_t chunk) {
    AdaptiveCompressor::Options o;
    o.mode = mode;
    o.zstd_level = zstd_level;
    o.pretest = pretest;
    AdaptiveCompressor ac(o);
    run_encode(state, ac, kind, chunk);
}

// Receiver side: decode() of chunks pre-encoded with a forced codec.
void BM_Decode(benchmark::State& state, CompressionMode mode, Kind kind) {
    const auto& buf = data(kind);
    AdaptiveCompressor::Options o;
    o.mode = mode;
    AdaptiveCompressor ac(o);
    struct Packed {
        Codec codec;
        std::vector<std::byte> bytes;
    };
    std::vector<Packed> packed;
    std::vector<std::byte> out;
    for (size_t off = 0; off < kBufBytes; off += kChunk) {
        auto chunk = std::span(buf).subspan(off, kChunk);
        auto e = ac.encode(chunk, out);
        if (e.codec == Codec::none)
            packed.push_back({e.codec, {chunk.begin(), chunk.end()}});
        else
            packed.push_back({e.codec, {out.begin(), out.begin() + static_cast<ptrdiff_t>(e.size)}});
    }
    std::vector<std::byte> back(kChunk);
    Rate rate;
    for (auto _ : state) {
        for (const auto& p : packed) {
            rmig::engine::decode(p.codec, p.bytes, back);
            benchmark::DoNotOptimize(back.data());
        }
    }
    report(state, rate, 0, 0);
}

// One compression attempt per piece of `size` bytes, as the codec alone
// costs: 1 MiB is a full chunk, 16 KiB the pre-test's four pieces.
void BM_Attempt(benchmark::State& state, Codec codec, Kind kind, size_t size) {
    const auto& buf = data(kind);
    Compressor c(codec, 1);
    std::vector<std::byte> out(size);
    size_t in = 0, wire = 0;
    Rate rate;
    for (auto _ : state) {
        for (size_t off = 0; off < kBufBytes; off += size) {
            size_t n = c.compress(std::span(buf).subspan(off, size), std::span(out).first(size * 97 / 100));
            benchmark::DoNotOptimize(out.data());
            in += size;
            wire += n ? n : size;
        }
    }
    const double per_s = rate.bytes_per_s(static_cast<double>(in));
    report(state, rate, in, wire);
    state.counters["us_per_call"] = static_cast<double>(size) / per_s * 1e6;
}

// A probe's view: 64 KiB pieces, for the sample-vs-chunk bias of ratio and speed.
void BM_Sample(benchmark::State& state, Codec codec, int level, Kind kind) {
    const auto& buf = data(kind);
    constexpr size_t kSample = 64 * 1024;
    Compressor c(codec, level);
    std::vector<std::byte> out(kSample);
    size_t in = 0, wire = 0;
    Rate rate;
    for (auto _ : state) {
        for (size_t off = 0; off < kBufBytes; off += kSample) {
            size_t n = c.compress(std::span(buf).subspan(off, kSample), std::span(out).first(kSample * 97 / 100));
            benchmark::DoNotOptimize(out.data());
            in += kSample;
            wire += n ? n : kSample;
        }
    }
    report(state, rate, in, wire);
}

// The adaptive choice at a fixed link rate: the encode rate is the CPU it
// costs; at a link far faster than any codec it is the probes' cost alone.
void BM_Auto(benchmark::State& state, double link, Kind kind) {
    AdaptiveCompressor ac;
    ac.set_link_rate(link);
    run_encode(state, ac, kind, kChunk);
    const auto& s = ac.stats();
    const double chunks = static_cast<double>(s.chunks[0] + s.chunks[1] + s.chunks[2]);
    state.counters["lz4_pct"] = 100.0 * static_cast<double>(s.chunks[1]) / chunks;
    state.counters["zstd_pct"] = 100.0 * static_cast<double>(s.chunks[2]) / chunks;
    state.counters["probes_per_chunk"] = static_cast<double>(s.probes) / chunks;
    state.SetLabel(s.reason);
}

constexpr CompressionMode kLz4 = CompressionMode::lz4;
constexpr CompressionMode kZstd = CompressionMode::zstd;

}  // namespace

BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);

#define ENCODE_KINDS(name, mode, level)                                                                              \
    BENCHMARK_CAPTURE(BM_Encode, name##_zero, mode, level, Kind::zero, true, kChunk)->Unit(benchmark::kMillisecond); \
    BENCHMARK_CAPTURE(BM_Encode, name##_text, mode, level, Kind::text, true, kChunk)->Unit(benchmark::kMillisecond); \
    BENCHMARK_CAPTURE(BM_Encode, name##_code, mode, level, Kind::code, true, kChunk)->Unit(benchmark::kMillisecond); \
    BENCHMARK_CAPTURE(BM_Encode, name##_random, mode, level, Kind::random, true, kChunk)                             \
        ->Unit(benchmark::kMillisecond);                                                                             \
    BENCHMARK_CAPTURE(BM_Encode, name##_mix, mode, level, Kind::mix, true, kChunk)->Unit(benchmark::kMillisecond)

ENCODE_KINDS(lz4, kLz4, 1);
ENCODE_KINDS(zstd1, kZstd, 1);
ENCODE_KINDS(zstd_m1, kZstd, -1);
ENCODE_KINDS(zstd_m3, kZstd, -3);

BENCHMARK_CAPTURE(BM_Encode, lz4_alt, kLz4, 1, Kind::alt, true, kChunk)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, zstd1_alt, kZstd, 1, Kind::alt, true, kChunk)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, lz4_alt_NoPretest, kLz4, 1, Kind::alt, false, kChunk)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, zstd1_alt_NoPretest, kZstd, 1, Kind::alt, false, kChunk)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, lz4_mix_NoPretest, kLz4, 1, Kind::mix, false, kChunk)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, zstd1_mix_NoPretest, kZstd, 1, Kind::mix, false, kChunk)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, lz4_mix_256K, kLz4, 1, Kind::mix, true, 256 * 1024)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, zstd1_mix_256K, kZstd, 1, Kind::mix, true, 256 * 1024)->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(BM_Attempt, lz4_random_1M, Codec::lz4, Kind::random, kChunk)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Attempt, zstd1_random_1M, Codec::zstd, Kind::random, kChunk)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Attempt, lz4_random_16K, Codec::lz4, Kind::random, 16 * 1024)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Attempt, zstd1_random_16K, Codec::zstd, Kind::random, 16 * 1024)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Attempt, lz4_text_16K, Codec::lz4, Kind::text, 16 * 1024)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Attempt, zstd1_text_16K, Codec::zstd, Kind::text, 16 * 1024)->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(BM_Sample, lz4_text, Codec::lz4, 1, Kind::text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sample, lz4_code, Codec::lz4, 1, Kind::code)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sample, lz4_mix, Codec::lz4, 1, Kind::mix)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sample, zstd1_text, Codec::zstd, 1, Kind::text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sample, zstd1_code, Codec::zstd, 1, Kind::code)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sample, zstd1_mix, Codec::zstd, 1, Kind::mix)->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(BM_Decode, lz4_text, kLz4, Kind::text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, lz4_code, kLz4, Kind::code)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, lz4_mix, kLz4, Kind::mix)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, zstd1_text, kZstd, Kind::text)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, zstd1_code, kZstd, Kind::code)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, zstd1_mix, kZstd, Kind::mix)->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(BM_Auto, mix_link_100MBps, 100e6, Kind::mix)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Auto, mix_link_400MBps, 400e6, Kind::mix)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Auto, mix_link_1GBps, 1e9, Kind::mix)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Auto, mix_link_100GBps, 100e9, Kind::mix)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Auto, random_link_100MBps, 100e6, Kind::random)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Auto, alt_link_100MBps, 100e6, Kind::alt)->Unit(benchmark::kMillisecond);
