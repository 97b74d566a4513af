// The record that carries one remote write (OneSided over dpdk) inside a
// channel's byte stream: 32 bytes, then `length` page bytes that go to
// `offset` in the region the destination exposed as `rkey`
// (docs/dpdk-protocol.md, "Memory mode over dpdk"). The header has its own
// check so a damaged record never writes to the wrong place; the page bytes
// are outside it on purpose (they may change while in flight). Pure C++.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace rmig::transport::dpdk::proto {

inline constexpr uint32_t kWriteRecordMagic = 0x524D5731;  // "RMW1" (wire frames: "RMF1")
inline constexpr size_t kWriteRecordSize = 32;

struct WriteRecord {
    uint32_t rkey = 0;
    uint64_t offset = 0;
    uint32_t length = 0;
};

using WriteRecordBytes = std::array<std::byte, kWriteRecordSize>;

WriteRecordBytes encode(const WriteRecord& r);
bool is_write_record(std::span<const std::byte> first4);  // by magic
// nullopt when the magic or the check does not match.
std::optional<WriteRecord> decode_write_record(std::span<const std::byte, kWriteRecordSize> in);

}  // namespace rmig::transport::dpdk::proto
