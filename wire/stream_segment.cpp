#include "wire/stream_segment.hpp"

#include "common/error.hpp"
#include "wire/byte_order.hpp"

namespace rmig::wire {

const char* to_string(SegmentCodec c) {
    switch (c) {
    case SegmentCodec::none: return "none";
    case SegmentCodec::lz4: return "lz4";
    case SegmentCodec::zstd: return "zstd";
    }
    return "unknown";
}

void encode_segment_header(const SegmentHeader& h, std::span<std::byte, kSegmentHeaderSize> b) {
    put_le<uint64_t>(&b[0], h.offset);
    put_le<uint32_t>(&b[8], h.raw_len);
    b[12] = static_cast<std::byte>(h.codec);
    b[13] = static_cast<std::byte>(h.fin ? kSegmentFin : 0);
    put_le<uint16_t>(&b[14], 0);
}

SegmentHeader decode_segment_header(std::span<const std::byte> p, uint32_t max_raw,
                                    const std::string& channel) {
    if (p.size() < kSegmentHeaderSize)
        throw ProtocolError(cat(channel, ": segment frame of ", p.size(), " bytes, shorter than its ",
                                kSegmentHeaderSize, "-byte header"));
    SegmentHeader h;
    h.offset = get_le<uint64_t>(&p[0]);
    h.raw_len = get_le<uint32_t>(&p[8]);
    auto codec = std::to_integer<uint8_t>(p[12]);
    auto flags = std::to_integer<uint8_t>(p[13]);
    if (codec > static_cast<uint8_t>(SegmentCodec::zstd))
        throw ProtocolError(cat(channel, ": segment at offset ", h.offset, " names unknown codec ",
                                unsigned(codec)));
    if ((flags & ~kSegmentFin) != 0 || get_le<uint16_t>(&p[14]) != 0)
        throw ProtocolError(cat(channel, ": segment at offset ", h.offset, " sets reserved bits"));
    h.codec = static_cast<SegmentCodec>(codec);
    h.fin = (flags & kSegmentFin) != 0;
    size_t body = p.size() - kSegmentHeaderSize;
    if (h.fin && (h.raw_len != 0 || body != 0))
        throw ProtocolError(cat(channel, ": end-of-stream segment at offset ", h.offset, " carries bytes"));
    if (h.raw_len > max_raw)
        throw ProtocolError(cat(channel, ": segment at offset ", h.offset, " claims ", h.raw_len,
                                " bytes, more than the ", max_raw, " this stream allows"));
    if (h.codec == SegmentCodec::none && body != h.raw_len)
        throw ProtocolError(cat(channel, ": segment at offset ", h.offset, " claims ", h.raw_len,
                                " bytes but carries ", body));
    if (h.offset + h.raw_len < h.offset)
        throw ProtocolError(cat(channel, ": segment offset ", h.offset, " overflows"));
    return h;
}

std::array<std::byte, kAckSize> encode_ack(const Ack& a) {
    std::array<std::byte, kAckSize> b{};
    put_le<uint64_t>(&b[0], a.delivered);
    b[8] = static_cast<std::byte>(a.fin ? 1 : 0);
    return b;
}

Ack decode_ack(std::span<const std::byte> p, const std::string& channel) {
    if (p.size() != kAckSize)
        throw ProtocolError(cat(channel, ": ack frame of ", p.size(), " bytes, expected ", kAckSize));
    auto flags = std::to_integer<uint8_t>(p[8]);
    bool reserved_zero = (flags & ~1u) == 0 && get_le<uint32_t>(&p[9]) == 0 &&
                         get_le<uint16_t>(&p[13]) == 0 && std::to_integer<uint8_t>(p[15]) == 0;
    if (!reserved_zero) throw ProtocolError(cat(channel, ": ack frame sets reserved bits"));
    return {get_le<uint64_t>(&p[0]), (flags & 1) != 0};
}

std::array<std::byte, kAttachSize> encode_attach(const Attach& a) {
    std::array<std::byte, kAttachSize> b{};
    put_le<uint16_t>(&b[0], kFlowProtocolVersion);
    put_le<uint32_t>(&b[4], a.stream);
    put_le<uint32_t>(&b[8], a.flow);
    put_le<uint32_t>(&b[12], a.streams);
    put_le<uint64_t>(&b[16], a.delivered);
    return b;
}

Attach decode_attach(std::span<const std::byte> p, const std::string& channel) {
    if (p.size() != kAttachSize)
        throw ProtocolError(cat(channel, ": attach frame of ", p.size(), " bytes, expected ", kAttachSize));
    uint16_t v = get_le<uint16_t>(&p[0]);
    if (v != kFlowProtocolVersion)
        throw ProtocolError(cat(channel, ": flow protocol version ", v, ", this build speaks ",
                                kFlowProtocolVersion));
    if (get_le<uint16_t>(&p[2]) != 0 || get_le<uint64_t>(&p[24]) != 0)
        throw ProtocolError(cat(channel, ": attach frame sets reserved bits"));
    Attach a{get_le<uint32_t>(&p[4]), get_le<uint32_t>(&p[8]), get_le<uint32_t>(&p[12]),
             get_le<uint64_t>(&p[16])};
    if (a.stream == 0 || a.stream > a.streams)
        throw ProtocolError(cat(channel, ": attach names stream ", a.stream, " of ", a.streams));
    return a;
}

}  // namespace rmig::wire
