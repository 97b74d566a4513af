// Writes decoded pages into destination memory: a zero marker becomes a
// memset, a raw page a copy, a compressed page is decompressed in place (the
// decompressor checks that it yields exactly one page). One per receiver
// thread: it owns that thread's codec contexts.
#pragma once

#include <span>

#include "engine/memory/page_batch.hpp"
#include "engine/pages/compressor.hpp"

namespace rmig::engine {

class PagePlacer {
public:
    PagePlacer() : lz4_(Codec::lz4), zstd_(Codec::zstd) {}

    // `page` is the destination page (page size bytes). Throws ProtocolError
    // on a payload that does not decompress to exactly one page.
    void place(const PageEntry& entry, std::span<std::byte> page);

private:
    Compressor lz4_;
    Compressor zstd_;
};

}  // namespace rmig::engine
