#include "transport/dpdk/protocol/write_record.hpp"

namespace rmig::transport::dpdk::proto {

namespace {

void put(std::byte* p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<std::byte>(v >> (8 * (n - 1 - i)));
}

uint64_t get(const std::byte* p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
    return v;
}

uint64_t check(const std::byte* p) {  // FNV-1a over the 24 bytes before the check
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < 24; ++i) h = (h ^ static_cast<uint8_t>(p[i])) * 0x100000001b3ull;
    return h;
}

}  // namespace

WriteRecordBytes encode(const WriteRecord& r) {
    WriteRecordBytes b{};
    put(b.data(), kWriteRecordMagic, 4);
    put(b.data() + 4, r.rkey, 4);
    put(b.data() + 8, r.offset, 8);
    put(b.data() + 16, r.length, 4);
    put(b.data() + 24, check(b.data()), 8);
    return b;
}

bool is_write_record(std::span<const std::byte> first4) {
    return first4.size() >= 4 && get(first4.data(), 4) == kWriteRecordMagic;
}

std::optional<WriteRecord> decode_write_record(std::span<const std::byte, kWriteRecordSize> in) {
    const std::byte* p = in.data();
    if (get(p, 4) != kWriteRecordMagic || get(p + 20, 4) != 0 || get(p + 24, 8) != check(p))
        return std::nullopt;
    WriteRecord r;
    r.rkey = static_cast<uint32_t>(get(p + 4, 4));
    r.offset = get(p + 8, 8);
    r.length = static_cast<uint32_t>(get(p + 16, 4));
    return r;
}

}  // namespace rmig::transport::dpdk::proto
