// Adaptive compression of stream chunks (channel mode's striped stream: one
// chunk of up to a few MiB per frame). Per chunk it picks none, lz4 or zstd
// for the highest rate of *input* bytes delivered:
//   none: link;   codec c: min(speed_c, link / ratio_c)
// from the link rate the caller measures and the speed and ratio this instance
// measures on the data it sees. So compression goes off on a link faster than
// the codec and on where it wins; chunks that do not shrink go raw. How and
// why: docs/compression.md.
//
// One AdaptiveCompressor per sending thread: not thread-safe (publish a copy
// of stats() for a progress line). Every chunk is compressed on its own (no
// shared dictionary or window), so each frame decodes alone, in any order.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/pages/compressor.hpp"

namespace rmig::engine {

// What the user asked for: a fixed codec, or the adaptive choice.
enum class CompressionMode { automatic, none, lz4, zstd };

// "auto", "none" (or "off"), "lz4", "zstd". Throws Error naming the bad value and the choices.
CompressionMode parse_compression_mode(std::string_view text);
std::string_view to_string(CompressionMode m) noexcept;

struct CompressionStats {
    uint64_t in_bytes = 0;             // chunk bytes given to encode()
    uint64_t wire_bytes = 0;           // payload bytes to send: compressed sizes, raw chunks in full
    std::array<uint64_t, 3> chunks{};  // chunks sent, indexed by Codec (none = raw for any reason)
    uint64_t incompressible = 0;       // raw because compressing did not save enough (included in chunks[none])
    uint64_t skipped = 0;              // raw without a full try: backoff or failed pre-test (included in chunks[none])
    uint64_t probes = 0;               // samples compressed only to measure a codec not in use
    Codec current = Codec::none;       // what the next chunk will use
    // Why, e.g. "zstd: link 100 MB/s / ratio 0.51 = 197 MB/s in < zstd 497 MB/s; lz4 172 MB/s in (...)".
    std::string reason;
    // Current estimates per codec (0 = not measured yet): input bytes per
    // second of compression, and out/in with raw-sent chunks counted as 1.
    std::array<double, 3> speed{};
    std::array<double, 3> ratio{};
    double link = 0;  // link bytes/s per sender as used by the choice (0 = unknown)
};

class AdaptiveCompressor {
public:
    // Where timings come from. The default reads CLOCK_MONOTONIC around each
    // compression; tests substitute a model so the choice does not depend on
    // this machine's speed (the real measurement still runs).
    class Timing {
    public:
        virtual ~Timing() = default;
        virtual uint64_t now_ns() const;
        // The duration to account for compressing `in_bytes` with `codec`,
        // which took `measured_ns` on now_ns().
        virtual uint64_t compress_ns(Codec codec, size_t in_bytes, uint64_t measured_ns) const;
    };

    struct Options {
        CompressionMode mode = CompressionMode::automatic;
        int lz4_acceleration = 1;  // Compressor levels; see docs/compression.md for the measurements
        int zstd_level = 1;
        // A chunk goes raw unless it compresses to at most this fraction of its size.
        double max_ratio = 0.97;
        // After a chunk that did not compress, judge the next on a few small
        // pieces first and skip it when they do not shrink (saves most of a
        // failed attempt on random data).
        bool pretest = true;
        // The codec not in use is measured on a sample (probe_bytes) of about
        // every probe_interval-th chunk, next to the one in use on the same
        // sample, within probe_budget of wall time (0 interval: never).
        unsigned probe_interval = 8;
        size_t probe_bytes = 64 * 1024;
        double probe_budget = 0.02;
        const Timing* timing = nullptr;  // null: the real clock; must outlive the compressor
    };

    // Throws Error on bad options (levels, ratio, budget).
    explicit AdaptiveCompressor(Options opts);
    AdaptiveCompressor() : AdaptiveCompressor(Options{}) {}
    ~AdaptiveCompressor();
    AdaptiveCompressor(AdaptiveCompressor&&) noexcept;
    AdaptiveCompressor& operator=(AdaptiveCompressor&&) noexcept;

    // The wire rate the link sustains, in bytes/s, across all `senders`
    // threads sharing it (each gets 1/senders). Best measured while the link
    // was the bottleneck (frames queued); a rate measured while this thread
    // was busy compressing most of the time is taken as a lower bound only.
    // Until the first call, auto mode sends raw (and still measures codecs).
    void set_link_rate(double bytes_per_s, unsigned senders = 1);

    struct Encoded {
        Codec codec;  // none: send `chunk` itself
        size_t size;  // payload bytes: out[0, size) for lz4/zstd, chunk.size() for none
    };
    // Compresses one chunk into `out` or decides to send it raw. When it
    // tries to compress, `out` is grown to chunk.size() if smaller (never
    // shrunk: a reused buffer costs no allocation); with codec none its
    // contents are unspecified.
    Encoded encode(std::span<const std::byte> chunk, std::vector<std::byte>& out);

    const CompressionStats& stats() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Receiver side: decodes one chunk payload (untrusted bytes from the peer)
// into `out`, whose size is the chunk size the frame announced and must come
// out exactly filled. codec none: `in` is the chunk (copied). Throws
// ProtocolError on corrupt input or a size mismatch and never writes outside
// `out`. Keeps one decompression context per thread, so no allocation per chunk.
void decode(Codec codec, std::span<const std::byte> in, std::span<std::byte> out);

}  // namespace rmig::engine
