// Guest memory regions, and the layout both sides exchange on the control
// channel before any page moves: a destination whose regions differ in count,
// name, size or page size refuses the session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/memory/page_batch.hpp"

namespace rmig::engine {

struct Region {
    void* base = nullptr;  // page aligned
    size_t size = 0;       // multiple of the page size
    uint64_t gpa = 0;      // guest physical address (carried for the VMM; not compared)
    std::string name;
};

// {"page_size": N, "regions": [{"name": ..., "size": ..., "gpa": ...}, ...]}
nlohmann::json layout_to_json(const std::vector<Region>& regions, size_t page_size);

// Throws Error naming the first difference between the peer's layout (JSON,
// untrusted) and ours.
void check_layout(const nlohmann::json& peer, const std::vector<Region>& ours, size_t page_size);

// Throws Error if a region is empty, unaligned or not a whole number of pages.
void validate_regions(const std::vector<Region>& regions, size_t page_size);

BatchLayout batch_layout(const std::vector<Region>& regions, size_t page_size);

}  // namespace rmig::engine
