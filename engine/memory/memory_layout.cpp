#include "engine/memory/memory_layout.hpp"

#include "common/error.hpp"

namespace rmig::engine {

using nlohmann::json;

json layout_to_json(const std::vector<Region>& regions, size_t page_size) {
    json list = json::array();
    for (const auto& r : regions) list.push_back({{"name", r.name}, {"size", r.size}, {"gpa", r.gpa}});
    return {{"page_size", page_size}, {"regions", list}};
}

void check_layout(const json& peer, const std::vector<Region>& ours, size_t page_size) {
    if (!peer.is_object() || !peer.contains("regions") || !peer["regions"].is_array() ||
        !peer.contains("page_size") || !peer["page_size"].is_number_unsigned())
        throw Error("layout: malformed (needs page_size and a regions array)");
    if (peer["page_size"].get<uint64_t>() != page_size)
        throw Error(cat("layout: page size ", peer["page_size"].get<uint64_t>(), " here is ",
                        page_size));
    const json& list = peer["regions"];
    if (list.size() != ours.size())
        throw Error(cat("layout: ", list.size(), " regions offered, ", ours.size(), " registered here"));
    for (size_t i = 0; i < ours.size(); ++i) {
        const json& r = list[i];
        if (!r.is_object() || !r.contains("name") || !r["name"].is_string() || !r.contains("size") ||
            !r["size"].is_number_unsigned())
            throw Error(cat("layout: region ", i, " is malformed"));
        auto name = r["name"].get<std::string>();
        auto size = r["size"].get<uint64_t>();
        if (name != ours[i].name)
            throw Error(cat("layout: region ", i, " is '", name, "' there, '", ours[i].name, "' here"));
        if (size != ours[i].size)
            throw Error(cat("layout: region '", name, "' is ", size, " bytes there, ", ours[i].size,
                            " here"));
    }
}

void validate_regions(const std::vector<Region>& regions, size_t page_size) {
    if (regions.empty()) throw Error("memory mode: no regions registered");
    for (const auto& r : regions) {
        if (r.base == nullptr || r.size == 0)
            throw Error(cat("region '", r.name, "': empty"));
        if (reinterpret_cast<uintptr_t>(r.base) % page_size != 0 || r.size % page_size != 0)
            throw Error(cat("region '", r.name, "': base and size must be multiples of the page size ",
                            page_size));
    }
}

BatchLayout batch_layout(const std::vector<Region>& regions, size_t page_size) {
    BatchLayout l;
    l.page_size = page_size;
    for (const auto& r : regions) l.region_pages.push_back(r.size / page_size);
    return l;
}

}  // namespace rmig::engine
