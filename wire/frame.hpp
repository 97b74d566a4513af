// rmig wire protocol v1: framed data on a channel (docs/wire-protocol.md).
//
// Every frame is a 32-byte little-endian header followed by `length` payload
// bytes. Frames on a channel are numbered from 0 in each direction; the
// checksum covers the header fields and the payload, so a corrupt, truncated,
// reordered or foreign frame ends the migration with an error that names the
// channel and what was wrong.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rmig::wire {

enum class FrameType : uint8_t {
    data = 1,     // opaque stream bytes (channel mode: a piece of QEMU's stream)
    end = 2,      // sender finished cleanly; no payload
    control = 3,  // one JSON control message (control channel only)
    abort = 4,    // sender gives up; payload is a UTF-8 reason
    // Channel mode's flows (wire/stream_segment.hpp): a QEMU stream striped
    // over one or more channels that can be replaced after a link outage.
    segment = 5,  // stream bytes at an offset (header + maybe compressed bytes)
    ack = 6,      // cumulative: stream bytes delivered to the local QEMU
    attach = 7,   // first frame of a flow: which stream, which flow
};
const char* to_string(FrameType t);
bool known_frame_type(uint8_t t);  // a FrameType this build speaks

inline constexpr uint32_t kFrameMagic = 0x31464d52;  // "RMF1"
inline constexpr size_t kFrameHeaderSize = 32;
inline constexpr uint32_t kMaxFramePayload = 16u << 20;

struct FrameHeader {
    FrameType type = FrameType::data;
    uint8_t flags = 0;  // v1: must be 0 (reserved for compression/encryption)
    uint32_t channel = 0;
    uint32_t length = 0;
    uint64_t seq = 0;
    uint64_t checksum = 0;
};

using HeaderBytes = std::array<std::byte, kFrameHeaderSize>;

// Sender half of one channel direction: numbers and checksums frames.
class FrameEncoder {
public:
    explicit FrameEncoder(uint32_t channel) : channel_(channel) {}
    HeaderBytes encode(FrameType type, std::span<const std::byte> payload);
    uint64_t next_seq() const { return seq_; }

private:
    uint32_t channel_;
    uint64_t seq_ = 0;
};

// Receiver half of one channel direction. Throws rmig::ProtocolError whose
// message starts with the channel name.
class FrameDecoder {
public:
    FrameDecoder(uint32_t channel, std::string channel_name)
        : channel_(channel), name_(std::move(channel_name)) {}

    // Checks magic, type, reserved bits, channel, length bound and order.
    FrameHeader decode_header(std::span<const std::byte, kFrameHeaderSize> bytes);
    // Checks the checksum over header and payload; then the frame counts as received.
    void verify_payload(const FrameHeader& h, std::span<const std::byte> payload);
    // For readers that checksum the payload as it streams past (StreamingChecksum
    // seeded with payload_seed() after decode_header): checks the digest of
    // `length` payload bytes; then the frame counts as received.
    uint64_t payload_seed() const;
    void verify_digest(const FrameHeader& h, uint64_t digest);
    // For readers that hit EOF inside a frame.
    [[noreturn]] void truncated(const char* part, size_t got, size_t want) const;

    uint64_t expected_seq() const { return seq_; }
    const std::string& name() const { return name_; }

private:
    uint32_t channel_;
    std::string name_;
    uint64_t seq_ = 0;
    HeaderBytes last_header_{};
};

}  // namespace rmig::wire
