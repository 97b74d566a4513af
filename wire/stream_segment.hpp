// Channel mode's flow protocol (docs/wire-protocol.md, "Flows"): each QEMU
// migration stream is cut into segments at stream offsets and carried by one
// or more flows (rmig channels), maybe over several paths. The receiver puts
// segments back in order, drops the ones it already has, and acknowledges
// what it has delivered to its QEMU; the sender keeps every unacknowledged
// segment, so a flow that breaks is replaced and its segments resent without
// QEMU noticing more than a pause. These are the payloads of the segment,
// ack and attach frames (wire/frame.hpp); no I/O here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rmig::wire {

// How a segment's bytes are coded. Values are wire values.
enum class SegmentCodec : uint8_t { none = 0, lz4 = 1, zstd = 2 };
const char* to_string(SegmentCodec c);

// Segment payload: this header, then the (maybe compressed) bytes.
//   0 u64 offset  8 u32 raw_len  12 u8 codec  13 u8 flags  14 u16 reserved
inline constexpr size_t kSegmentHeaderSize = 16;
inline constexpr uint8_t kSegmentFin = 1;  // the stream ends at `offset` (raw_len 0, no bytes)

struct SegmentHeader {
    uint64_t offset = 0;   // where the raw bytes start in the stream
    uint32_t raw_len = 0;  // raw bytes (after decoding)
    SegmentCodec codec = SegmentCodec::none;
    bool fin = false;
};

void encode_segment_header(const SegmentHeader& h, std::span<std::byte, kSegmentHeaderSize> out);
// Checks codec, flags, reserved bits, that a fin carries nothing and that raw
// bytes match the payload when uncoded; `payload` is the whole frame payload.
// Throws ProtocolError naming `channel`.
SegmentHeader decode_segment_header(std::span<const std::byte> payload, uint32_t max_raw,
                                    const std::string& channel);

// Ack payload:  0 u64 delivered  8 u8 flags (bit 0: the fin was delivered)  9 u8[7] reserved
inline constexpr size_t kAckSize = 16;
struct Ack {
    uint64_t delivered = 0;  // stream bytes written to the local QEMU, in order
    bool fin = false;
};
std::array<std::byte, kAckSize> encode_ack(const Ack& a);
Ack decode_ack(std::span<const std::byte> payload, const std::string& channel);

// Attach payload, the first frame each way on a flow:
//   0 u16 version  2 u16 reserved  4 u32 stream (1 = QEMU's first connection)
//   8 u32 flow  12 u32 streams  16 u64 delivered (as in Ack)  24 u64 reserved
inline constexpr size_t kAttachSize = 32;
inline constexpr uint16_t kFlowProtocolVersion = 1;
struct Attach {
    uint32_t stream = 0;
    uint32_t flow = 0;
    uint32_t streams = 0;
    uint64_t delivered = 0;
};
std::array<std::byte, kAttachSize> encode_attach(const Attach& a);
Attach decode_attach(std::span<const std::byte> payload, const std::string& channel);

}  // namespace rmig::wire
