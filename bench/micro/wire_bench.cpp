// Per-core cost of the wire layer's byte work, next to the memcpy it competes
// with: XXH3 frame checksums, a full frame encode/decode round trip, and a
// plain memcpy of the same sizes. All buffers are allocated, filled with
// incompressible bytes and touched once before timing, then reused (warm), the
// way a channel reuses its frame buffer.
//
// Read the results as ratios within one run (e.g. checksum GB/s / memcpy GB/s),
// never as absolute targets: the absolute numbers depend on the machine.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "wire/checksum.hpp"
#include "wire/frame.hpp"

namespace {

using rmig::wire::FrameDecoder;
using rmig::wire::FrameEncoder;
using rmig::wire::FrameType;

// Pseudo-random (incompressible) contents; xorshift64* so every run sees the same bytes.
std::vector<std::byte> random_buffer(size_t size, uint64_t seed) {
    std::vector<std::byte> buf(size);
    uint64_t x = seed | 1;
    for (size_t i = 0; i < size; i += sizeof x) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545f4914f6cdd1dULL;
        std::memcpy(&buf[i], &v, std::min(sizeof v, size - i));
    }
    return buf;
}

int64_t as_count(size_t n) { return static_cast<int64_t>(n); }

void BM_Checksum(benchmark::State& state) {
    const auto size = static_cast<size_t>(state.range(0));
    auto buf = random_buffer(size, 1);
    benchmark::DoNotOptimize(rmig::wire::checksum(buf));  // warm
    uint64_t seed = 0;
    for (auto _ : state) {
        uint64_t h = rmig::wire::checksum(buf, seed);
        benchmark::DoNotOptimize(h);
        seed = h & 1;  // data dependency so calls cannot be merged or hoisted
    }
    state.SetBytesProcessed(state.iterations() * as_count(size));
}

void BM_Memcpy(benchmark::State& state) {
    const auto size = static_cast<size_t>(state.range(0));
    auto src = random_buffer(size, 2);
    std::vector<std::byte> dst(size);
    std::memcpy(dst.data(), src.data(), size);  // warm both
    for (auto _ : state) {
        benchmark::DoNotOptimize(src.data());
        std::memcpy(dst.data(), src.data(), size);
        benchmark::DoNotOptimize(dst.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * as_count(size));
}

// One data frame through both halves of a channel direction: the sender's
// encode (header + checksum over header and payload) and the receiver's
// decode_header + verify_payload (all header checks + the same checksum again).
// Bytes processed = payload bytes, so this is the frame layer's cost per
// payload byte on one core with no I/O.
void BM_FrameRoundTrip(benchmark::State& state) {
    const auto size = static_cast<size_t>(state.range(0));
    auto payload = random_buffer(size, 3);
    FrameEncoder enc(1);
    FrameDecoder dec(1, "bench channel 1");
    for (auto _ : state) {
        auto header = enc.encode(FrameType::data, payload);
        benchmark::DoNotOptimize(header);
        auto h = dec.decode_header(header);
        dec.verify_payload(h, payload);
    }
    benchmark::DoNotOptimize(dec.expected_seq());
    state.SetBytesProcessed(state.iterations() * as_count(size));
}

// The same round trip with the payload copied to a separate receive buffer in
// between, as the kernel does on loopback: this is the per-byte CPU work of
// one tcp stream minus the syscalls, to set against BM_Memcpy.
void BM_FrameRoundTripWithCopy(benchmark::State& state) {
    const auto size = static_cast<size_t>(state.range(0));
    auto payload = random_buffer(size, 4);
    std::vector<std::byte> received(size);
    FrameEncoder enc(1);
    FrameDecoder dec(1, "bench channel 1");
    for (auto _ : state) {
        auto header = enc.encode(FrameType::data, payload);
        std::memcpy(received.data(), payload.data(), size);
        auto h = dec.decode_header(header);
        dec.verify_payload(h, received);
    }
    benchmark::DoNotOptimize(dec.expected_seq());
    state.SetBytesProcessed(state.iterations() * as_count(size));
}

}  // namespace

BENCHMARK(BM_Memcpy)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);
BENCHMARK(BM_Checksum)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);
BENCHMARK(BM_FrameRoundTrip)->Arg(64 << 10)->Arg(1 << 20);
BENCHMARK(BM_FrameRoundTripWithCopy)->Arg(64 << 10)->Arg(1 << 20);
