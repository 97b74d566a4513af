#include "lab/synth/hash_blob.hpp"

#include <cstring>

#include "common/error.hpp"
#include "lab/synth/guest_memory.hpp"

namespace rmig::synth {

namespace {
constexpr uint64_t kBlobMagic = 0x3148534847494d52ULL;  // "RMIGHSH1" read little-endian
constexpr size_t kMaxDeviceState = (16u << 20) - 64;    // one frame (rmig.h)
}  // namespace

size_t max_guest_bytes() {
    return (kMaxDeviceState - kHashBlobHeader) / sizeof(uint64_t) * kPageSize;
}

std::vector<std::byte> encode_hash_blob(uint64_t page_size, uint64_t writes, std::span<const uint64_t> hashes) {
    std::vector<std::byte> out(kHashBlobHeader + hashes.size() * sizeof(uint64_t));
    encode_hash_blob_into(out, page_size, writes, hashes);
    return out;
}

void encode_hash_blob_into(std::span<std::byte> out, uint64_t page_size, uint64_t writes,
                           std::span<const uint64_t> hashes) {
    if (out.size() != kHashBlobHeader + hashes.size() * sizeof(uint64_t))
        throw Error(cat("hash list: buffer of ", out.size(), " bytes for ", hashes.size(), " pages"));
    const uint64_t head[4] = {kBlobMagic, page_size, hashes.size(), writes};
    std::memcpy(out.data(), head, sizeof head);
    std::memcpy(out.data() + kHashBlobHeader, hashes.data(), hashes.size() * sizeof(uint64_t));
}

HashList decode_hash_blob(std::span<const std::byte> blob) {
    uint64_t head[4];
    if (blob.size() < sizeof head) throw Error(cat("hash list: device state of ", blob.size(), " bytes is too short"));
    std::memcpy(head, blob.data(), sizeof head);
    if (head[0] != kBlobMagic) throw Error("hash list: device state does not start with RMIGHSH1");
    if (head[2] > (blob.size() - kHashBlobHeader) / sizeof(uint64_t) ||
        blob.size() != kHashBlobHeader + head[2] * sizeof(uint64_t))
        throw Error(cat("hash list: ", head[2], " pages announced in ", blob.size(), " bytes"));
    HashList l;
    l.page_size = head[1];
    l.writes = head[3];
    l.hashes.resize(head[2]);
    std::memcpy(l.hashes.data(), blob.data() + kHashBlobHeader, head[2] * sizeof(uint64_t));
    return l;
}

}  // namespace rmig::synth
