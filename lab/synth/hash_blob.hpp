// The device state the synthetic guest hands over at switchover: the XXH3
// hash of every page of its memory as it stood when the writers stopped.
// Layout (little-endian u64s): magic "RMIGHSH1", page size, page count,
// writes so far, then one hash per page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace rmig::synth {

struct HashList {
    uint64_t page_size = 0;
    uint64_t writes = 0;
    std::vector<uint64_t> hashes;
};

inline constexpr size_t kHashBlobHeader = 4 * sizeof(uint64_t);

// Largest memory whose hash list fits in one device-state frame.
size_t max_guest_bytes();

std::vector<std::byte> encode_hash_blob(uint64_t page_size, uint64_t writes, std::span<const uint64_t> hashes);
// Same, into `out` already sized for hashes.size() (no allocation: pause() uses
// it on a buffer encoded once before migrating, so no page faults in downtime).
void encode_hash_blob_into(std::span<std::byte> out, uint64_t page_size, uint64_t writes,
                           std::span<const uint64_t> hashes);
// Throws Error on a wrong magic or a size that does not match the count.
HashList decode_hash_blob(std::span<const std::byte> blob);

}  // namespace rmig::synth
