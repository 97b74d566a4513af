// Optional per-page compression (off by default: on a fast link it costs more
// CPU than it saves wire time). One Compressor per worker thread: it owns the
// codec contexts, reused for every page so no page pays an allocation.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace rmig::engine {

enum class Codec { none, lz4, zstd };

// "none" (or "off"), "lz4", "zstd". Throws Error naming the bad value and the choices.
Codec parse_codec(const std::string& text);
std::string_view to_string(Codec c) noexcept;

class Compressor {
public:
    // `level`: for zstd the compression level (1 = fastest regular level,
    // negative = faster still, up to ZSTD_maxCLevel()); for lz4 the
    // "acceleration" of LZ4_compress_fast (1 = best ratio, higher = faster).
    // 0 picks the default (zstd 1, lz4 1). Throws Error on an out-of-range level.
    explicit Compressor(Codec codec, int level = 0);
    ~Compressor();
    Compressor(Compressor&&) noexcept;
    Compressor& operator=(Compressor&&) noexcept;
    Compressor(const Compressor&) = delete;
    Compressor& operator=(const Compressor&) = delete;

    Codec codec() const noexcept { return codec_; }
    int level() const noexcept { return level_; }

    // Compresses `in` into `out`; returns the compressed size, or 0 when the
    // result would not be strictly smaller than `in` (or the codec is none):
    // the caller then sends the page raw. `out` of in.size() bytes is always
    // enough; a smaller `out` only lowers the size that counts as a win.
    size_t compress(std::span<const std::byte> in, std::span<std::byte> out);

    // Decompresses `in` (bytes from the peer: untrusted) into `out`, which must
    // come out exactly filled (out.size() = the page size announced by the
    // frame). Throws ProtocolError on corrupt input or a size mismatch, Error
    // when the codec is none.
    void decompress(std::span<const std::byte> in, std::span<std::byte> out);

private:
    struct State;  // codec contexts (keeps lz4.h / zstd.h out of this header)
    Codec codec_;
    int level_;
    std::unique_ptr<State> state_;
};

}  // namespace rmig::engine
