#include "engine/wire/checksum.hpp"

#include <xxhash.h>

namespace rmig::wire {

uint64_t checksum(std::span<const std::byte> data, uint64_t seed) {
    return XXH3_64bits_withSeed(data.data(), data.size(), seed);
}

}  // namespace rmig::wire
