#include "transport/dpdk/protocol/segment_header.hpp"

#include <cstring>

namespace rmig::transport::dpdk::proto {

namespace {

template <class T>
void put(std::byte* p, T v) {
    // Big-endian, like every field rmig puts on a wire.
    for (size_t i = 0; i < sizeof(T); ++i)
        p[i] = static_cast<std::byte>(static_cast<uint64_t>(v) >> (8 * (sizeof(T) - 1 - i)));
}

template <class T>
T get(const std::byte* p) {
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
    return static_cast<T>(v);
}

}  // namespace

void encode(const SegmentHeader& h, std::span<std::byte, kSegmentHeaderSize> out) {
    std::byte* p = out.data();
    put<uint32_t>(p + 0, kMagic);
    put<uint8_t>(p + 4, kVersion);
    put<uint8_t>(p + 5, static_cast<uint8_t>(h.type));
    put<uint8_t>(p + 6, h.flags);
    put<uint8_t>(p + 7, h.queue);
    put<uint32_t>(p + 8, h.conn_id);
    put<uint32_t>(p + 12, h.length);
    put<uint64_t>(p + 16, h.seq);
    put<uint64_t>(p + 24, h.window_limit);
    put<uint64_t>(p + 32, h.timestamp);
}

std::optional<SegmentHeader> decode(std::span<const std::byte> in) {
    if (in.size() < kSegmentHeaderSize) return std::nullopt;
    const std::byte* p = in.data();
    if (get<uint32_t>(p) != kMagic || get<uint8_t>(p + 4) != kVersion) return std::nullopt;
    auto type = get<uint8_t>(p + 5);
    if (type < 1 || type > 7) return std::nullopt;
    SegmentHeader h;
    h.type = static_cast<SegmentType>(type);
    h.flags = get<uint8_t>(p + 6);
    h.queue = get<uint8_t>(p + 7);
    h.conn_id = get<uint32_t>(p + 8);
    h.length = get<uint32_t>(p + 12);
    h.seq = get<uint64_t>(p + 16);
    h.window_limit = get<uint64_t>(p + 24);
    h.timestamp = get<uint64_t>(p + 32);
    if (h.length > in.size() - kSegmentHeaderSize) return std::nullopt;
    return h;
}

}  // namespace rmig::transport::dpdk::proto
