#include "engine/memory/page_placer.hpp"

#include <cstring>

#include "common/error.hpp"

namespace rmig::engine {

void PagePlacer::place(const PageEntry& entry, std::span<std::byte> page) {
    switch (entry.kind) {
    case PageKind::zero: std::memset(page.data(), 0, page.size()); return;
    case PageKind::raw:
        if (entry.payload.size() != page.size())
            throw ProtocolError(cat("raw page ", entry.page_index, ": ", entry.payload.size(),
                                    " bytes for a ", page.size(), "-byte page"));
        std::memcpy(page.data(), entry.payload.data(), page.size());
        return;
    case PageKind::lz4:
        try {
            lz4_.decompress(entry.payload, page);
        } catch (const Error& e) {
            throw ProtocolError(cat("lz4 page ", entry.page_index, ": ", e.what()));
        }
        return;
    case PageKind::zstd:
        try {
            zstd_.decompress(entry.payload, page);
        } catch (const Error& e) {
            throw ProtocolError(cat("zstd page ", entry.page_index, ": ", e.what()));
        }
        return;
    }
    throw ProtocolError(cat("page ", entry.page_index, ": unknown kind"));
}

}  // namespace rmig::engine
