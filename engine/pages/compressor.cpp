#include "engine/pages/compressor.hpp"

#include <lz4.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "common/error.hpp"

namespace rmig::engine {

namespace {

// lz4 and zstd take int sizes; pages are far below this, but a caller's span
// is not, so refuse instead of truncating.
int as_int(size_t n, const char* what) {
    if (n > static_cast<size_t>(INT_MAX)) throw Error(cat("compressor: ", what, " of ", n, " bytes exceeds the codec's int range"));
    return static_cast<int>(n);
}

const char* as_chars(const std::byte* p) { return reinterpret_cast<const char*>(p); }
char* as_chars(std::byte* p) { return reinterpret_cast<char*>(p); }

}  // namespace

Codec parse_codec(const std::string& text) {
    if (text == "none" || text == "off") return Codec::none;
    if (text == "lz4") return Codec::lz4;
    if (text == "zstd") return Codec::zstd;
    throw Error(cat("unknown compression codec '", text, "' (expected none, lz4 or zstd)"));
}

std::string_view to_string(Codec c) noexcept {
    switch (c) {
        case Codec::none: return "none";
        case Codec::lz4: return "lz4";
        case Codec::zstd: return "zstd";
    }
    return "unknown";
}

struct Compressor::State {
    struct CCtxFree { void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); } };
    struct DCtxFree { void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); } };
    std::unique_ptr<ZSTD_CCtx, CCtxFree> zc;
    std::unique_ptr<ZSTD_DCtx, DCtxFree> zd;
    // LZ4_compress_fast_extState with our own state: LZ4_compress_fast would
    // rebuild a 16 KiB hash table on the stack for every page.
    std::vector<char> lz4_state;
};

Compressor::Compressor(Codec codec, int level) : codec_(codec), level_(level), state_(std::make_unique<State>()) {
    switch (codec_) {
        case Codec::none:
            level_ = 0;
            break;
        case Codec::lz4:
            if (level_ == 0) level_ = 1;
            if (level_ < 1 || level_ > 65537)  // LZ4_ACCELERATION_MAX
                throw Error(cat("lz4 acceleration ", level, " out of range (1..65537)"));
            state_->lz4_state.resize(static_cast<size_t>(LZ4_sizeofState()));
            break;
        case Codec::zstd: {
            if (level_ == 0) level_ = 1;
            if (level_ < ZSTD_minCLevel() || level_ > ZSTD_maxCLevel())
                throw Error(cat("zstd level ", level, " out of range (", ZSTD_minCLevel(), "..", ZSTD_maxCLevel(), ")"));
            state_->zc.reset(ZSTD_createCCtx());
            state_->zd.reset(ZSTD_createDCtx());
            if (!state_->zc || !state_->zd) throw Error("zstd: cannot allocate compression contexts");
            size_t r = ZSTD_CCtx_setParameter(state_->zc.get(), ZSTD_c_compressionLevel, level_);
            if (ZSTD_isError(r)) throw Error(cat("zstd: cannot set level ", level_, ": ", ZSTD_getErrorName(r)));
            // No frame checksum (the wire frame has XXH3 already); keep the content
            // size so the receiver can check it against the announced page size.
            r = ZSTD_CCtx_setParameter(state_->zc.get(), ZSTD_c_checksumFlag, 0);
            if (ZSTD_isError(r)) throw Error(cat("zstd: cannot disable checksum: ", ZSTD_getErrorName(r)));
            break;
        }
    }
}

Compressor::~Compressor() = default;
Compressor::Compressor(Compressor&&) noexcept = default;
Compressor& Compressor::operator=(Compressor&&) noexcept = default;

size_t Compressor::compress(std::span<const std::byte> in, std::span<std::byte> out) {
    if (in.empty()) return 0;
    // Anything not strictly smaller than the input is no win: cap the output
    // there so the codec gives up early instead of producing a useless result.
    const size_t cap = std::min(out.size(), in.size() - 1);
    if (cap == 0) return 0;
    switch (codec_) {
        case Codec::none:
            return 0;
        case Codec::lz4: {
            int n = LZ4_compress_fast_extState(state_->lz4_state.data(), as_chars(in.data()), as_chars(out.data()),
                                               as_int(in.size(), "input"), as_int(cap, "output"), level_);
            return n > 0 ? static_cast<size_t>(n) : 0;  // 0: did not fit in cap
        }
        case Codec::zstd: {
            size_t n = ZSTD_compress2(state_->zc.get(), out.data(), cap, in.data(), in.size());
            if (ZSTD_isError(n)) {
                if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return 0;
                throw Error(cat("zstd compress of ", in.size(), " bytes: ", ZSTD_getErrorName(n)));
            }
            return n;
        }
    }
    return 0;
}

void Compressor::decompress(std::span<const std::byte> in, std::span<std::byte> out) {
    switch (codec_) {
        case Codec::none:
            throw Error("decompress called on a compressor with codec none");
        case Codec::lz4: {
            // LZ4_decompress_safe never reads or writes out of bounds, whatever the input.
            int n = LZ4_decompress_safe(as_chars(in.data()), as_chars(out.data()), as_int(in.size(), "input"),
                                        as_int(out.size(), "output"));
            if (n < 0) throw ProtocolError(cat("lz4: corrupt compressed page (", in.size(), " bytes)"));
            if (static_cast<size_t>(n) != out.size())
                throw ProtocolError(cat("lz4: compressed page decodes to ", n, " bytes, expected ", out.size()));
            return;
        }
        case Codec::zstd: {
            // Check the declared size first: a frame claiming another size is a
            // protocol error even if it would fit.
            unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
            if (declared == ZSTD_CONTENTSIZE_ERROR)
                throw ProtocolError(cat("zstd: corrupt compressed page (", in.size(), " bytes, bad frame header)"));
            if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != out.size())
                throw ProtocolError(cat("zstd: compressed page declares ", declared, " bytes, expected ", out.size()));
            size_t n = ZSTD_decompressDCtx(state_->zd.get(), out.data(), out.size(), in.data(), in.size());
            if (ZSTD_isError(n))
                throw ProtocolError(cat("zstd: corrupt compressed page (", in.size(), " bytes): ", ZSTD_getErrorName(n)));
            if (n != out.size())
                throw ProtocolError(cat("zstd: compressed page decodes to ", n, " bytes, expected ", out.size()));
            return;
        }
    }
}

}  // namespace rmig::engine
