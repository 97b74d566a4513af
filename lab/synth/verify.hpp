// Destination check: every page of the received memory against the hash list
// the source took when its writers stopped.
#pragma once

#include <cstdint>
#include <vector>

#include "lab/synth/guest_memory.hpp"
#include "lab/synth/hash_blob.hpp"

namespace rmig::synth {

struct Verdict {
    uint64_t verified = 0;    // pages checked
    uint64_t mismatches = 0;  // pages whose hash differs
    uint64_t zero = 0;        // pages that are all zero
    std::vector<uint64_t> first_bad;  // up to 8 mismatching page numbers
};

// Throws Error if the list does not describe `m` (page size, page count).
Verdict verify_pages(const Mapping& m, const HashList& list, unsigned threads);

}  // namespace rmig::synth
