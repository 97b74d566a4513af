// Dirty source fed by the caller: each round the VMM hands in the log it read
// (KVM_GET_DIRTY_LOG layout, bit i of word w = page w*64+i).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/dirty/dirty_source.hpp"

namespace rmig::engine {

class BitmapSource final : public DirtySource {
public:
    BitmapSource(size_t pages, size_t page_size = 4096);

    void start() override;                         // drops anything submitted before
    void collect(DirtyBitmap& snapshot) override;  // everything submitted since the last collect
    void stop() override {}

    // ORs a log into the pending round; several submits per round accumulate.
    // Thread-safe, also against a concurrent collect(). Throws Error if nwords
    // exceeds the bitmap's words.
    void submit(const uint64_t* words, size_t nwords);

private:
    DirtyBitmap pending_;
};

}  // namespace rmig::engine
