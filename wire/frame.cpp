#include "wire/frame.hpp"

#include <algorithm>

#include "common/error.hpp"
#include "wire/byte_order.hpp"
#include "wire/checksum.hpp"

namespace rmig::wire {

const char* to_string(FrameType t) {
    switch (t) {
    case FrameType::data: return "data";
    case FrameType::end: return "end";
    case FrameType::control: return "control";
    case FrameType::abort: return "abort";
    case FrameType::segment: return "segment";
    case FrameType::ack: return "ack";
    case FrameType::attach: return "attach";
    }
    return "unknown";
}

bool known_frame_type(uint8_t t) { return t >= 1 && t <= 7; }

namespace {

// Header layout (little-endian):
//   0 u32 magic   4 u8 type   5 u8 flags   6 u16 reserved
//   8 u32 channel 12 u32 length 16 u64 seq 24 u64 checksum
constexpr size_t kCoveredHeader = 24;

uint64_t frame_checksum(std::span<const std::byte> header, std::span<const std::byte> payload) {
    return checksum(payload, checksum(header.first(kCoveredHeader)));
}


}  // namespace

HeaderBytes FrameEncoder::encode(FrameType type, std::span<const std::byte> payload) {
    HeaderBytes h{};
    put_le<uint32_t>(&h[0], kFrameMagic);
    h[4] = static_cast<std::byte>(type);
    put_le<uint32_t>(&h[8], channel_);
    put_le<uint32_t>(&h[12], static_cast<uint32_t>(payload.size()));
    put_le<uint64_t>(&h[16], seq_++);
    put_le<uint64_t>(&h[24], frame_checksum(h, payload));
    return h;
}

FrameHeader FrameDecoder::decode_header(std::span<const std::byte, kFrameHeaderSize> b) {
    uint32_t magic = get_le<uint32_t>(&b[0]);
    if (magic != kFrameMagic)
        throw ProtocolError(cat(name_, ": bad frame magic 0x", std::hex, magic, " (expected 0x",
                                kFrameMagic, ") at frame ", std::dec, seq_,
                                ": peer is not speaking rmig wire v1 or the stream is corrupt"));
    auto type = std::to_integer<uint8_t>(b[4]);
    if (!known_frame_type(type))
        throw ProtocolError(cat(name_, ": unknown frame type ", unsigned(type), " at frame ", seq_));
    FrameHeader h;
    h.type = static_cast<FrameType>(type);
    h.flags = std::to_integer<uint8_t>(b[5]);
    if (h.flags != 0 || get_le<uint16_t>(&b[6]) != 0)
        throw ProtocolError(cat(name_, ": reserved header bits set in frame ", seq_,
                                " (flags 0x", std::hex, unsigned(h.flags),
                                "): not negotiated in the handshake"));
    h.channel = get_le<uint32_t>(&b[8]);
    if (h.channel != channel_)
        throw ProtocolError(cat(name_, ": frame ", seq_, " belongs to channel ", h.channel,
                                ", not this one (", channel_, ")"));
    h.length = get_le<uint32_t>(&b[12]);
    if (h.length > kMaxFramePayload)
        throw ProtocolError(cat(name_, ": frame ", seq_, " claims ", h.length,
                                " payload bytes, more than the limit of ", kMaxFramePayload));
    if ((h.type == FrameType::end) && h.length != 0)
        throw ProtocolError(cat(name_, ": end frame ", seq_, " carries ", h.length,
                                " payload bytes (must be empty)"));
    h.seq = get_le<uint64_t>(&b[16]);
    if (h.seq != seq_)
        throw ProtocolError(cat(name_, ": frame out of order: expected sequence ", seq_, ", got ",
                                h.seq, h.seq < seq_ ? " (replayed or duplicated)" : " (frames lost)"));
    h.checksum = get_le<uint64_t>(&b[24]);
    std::copy(b.begin(), b.end(), last_header_.begin());
    return h;
}

void FrameDecoder::verify_payload(const FrameHeader& h, std::span<const std::byte> payload) {
    uint64_t want = frame_checksum(last_header_, payload);
    if (payload.size() != h.length || want != h.checksum)
        throw ProtocolError(cat(name_, ": checksum mismatch in ", to_string(h.type), " frame ",
                                h.seq, " (", h.length, " bytes): data corrupted in transit"));
    ++seq_;
}

uint64_t FrameDecoder::payload_seed() const {
    return checksum(std::span<const std::byte>(last_header_).first(kCoveredHeader));
}

void FrameDecoder::verify_digest(const FrameHeader& h, uint64_t digest) {
    if (digest != h.checksum)
        throw ProtocolError(cat(name_, ": checksum mismatch in ", to_string(h.type), " frame ", h.seq, " (",
                                h.length, " bytes): data corrupted in transit"));
    ++seq_;
}

void FrameDecoder::truncated(const char* part, size_t got, size_t want) const {
    throw TruncatedError(cat(name_, ": truncated frame ", seq_, ": connection ended after ", got,
                            " of ", want, " ", part, " bytes"));
}

}  // namespace rmig::wire
