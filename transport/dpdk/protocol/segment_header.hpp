// The header rmig's dpdk transport puts after the Ethernet header of every
// frame (docs/dpdk-protocol.md). Pure C++, no DPDK: the protocol logic around
// it is unit-tested on a simulated link.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace rmig::transport::dpdk::proto {

inline constexpr uint16_t kEtherType = 0x88B5;  // IEEE local experimental
inline constexpr uint32_t kMagic = 0x524D4450;  // "RMDP"
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kEthHeaderSize = 14;
inline constexpr size_t kSegmentHeaderSize = 40;

enum class SegmentType : uint8_t {
    data = 1,     // seq = segment number, payload = stream bytes; flag fin = end of stream
    ack = 2,      // seq = next expected segment, window_limit, payload = SACK bitmap
    syn = 3,      // opens conn_id; window_limit = sender's window in segments
    syn_ack = 4,  // accepts conn_id
    rst = 5,      // no such connection / connection aborted
    bye = 6,      // the sending port is going away (memif: stop polling, see protocol doc)
    bye_ack = 7,
};

enum SegmentFlags : uint8_t {
    kFromAcceptor = 1u << 0,  // sent by the accepting side of conn_id
    kFin = 1u << 1,           // data: last segment of the stream
};

struct SegmentHeader {
    SegmentType type = SegmentType::data;
    uint8_t flags = 0;
    uint32_t conn_id = 0;
    uint32_t length = 0;        // payload bytes after this header
    uint64_t seq = 0;           // data: segment number; ack: cumulative (next expected)
    uint64_t window_limit = 0;  // ack: first segment the receiver cannot take yet
    uint64_t timestamp = 0;     // data: send time (ns); ack: echo of the newest data's stamp
    // The sender's queue pair for this connection. The acceptor places a new
    // connection on the queue its SYN names, so both ends use the same queue
    // index (memif pairs queue i with the peer's queue i).
    uint8_t queue = 0;
};

void encode(const SegmentHeader& h, std::span<std::byte, kSegmentHeaderSize> out);
// nullopt if the bytes are not an rmig segment of this version (foreign traffic).
std::optional<SegmentHeader> decode(std::span<const std::byte> in);

}  // namespace rmig::transport::dpdk::proto
