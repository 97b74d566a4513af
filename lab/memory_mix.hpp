// Guest memory with a realistic mix, for benchmarks where what the memory
// holds matters (compression, zero pages): a file the lab loads into the
// source guest's RAM (VmSpec::preload). Why this mix is realistic:
// docs/benchmarks.md, "Long-distance links".
#pragma once

#include <cstdint>
#include <string>

namespace rmig::lab {

struct MemoryMix {
    // Shares of 1 MiB blocks, interleaved in a fixed order (sum 20).
    int binary = 7;  // code and data of this host's shared libraries (page cache, program text)
    int text = 5;    // source and documentation text from this host (page cache of text files)
    int random = 4;  // incompressible (encrypted or already compressed data)
    int zero = 4;    // freed pages
};

// Writes `bytes` (a multiple of 1 MiB) to `path`; the same inputs on the
// same host give the same file. Throws Error if the host has no text or
// libraries to read.
void write_memory_mix(const std::string& path, uint64_t bytes, const MemoryMix& mix = {});

}  // namespace rmig::lab
