#include "engine/memory/postcopy_wire.hpp"

#include <bit>
#include <cstring>

#include "common/error.hpp"

namespace rmig::engine {

using nlohmann::json;

size_t pending_bytes(const std::vector<Region>& regions, size_t page_size) {
    size_t n = 0;
    for (const auto& r : regions) n += (r.size / page_size + 63) / 64 * 8;
    return n;
}

std::vector<std::byte> encode_pending(const std::vector<DirtyBitmap>& pending) {
    static_assert(std::endian::native == std::endian::little, "bitmap words go as they are in memory");
    std::vector<std::byte> out;
    for (const auto& b : pending)
        for (size_t w = 0; w < b.words(); ++w) {
            uint64_t v = b.word(w);
            const auto* p = reinterpret_cast<const std::byte*>(&v);
            out.insert(out.end(), p, p + sizeof v);
        }
    return out;
}

std::vector<DirtyBitmap> decode_pending(std::span<const std::byte> bytes, const std::vector<Region>& regions,
                                        size_t page_size) {
    if (bytes.size() != pending_bytes(regions, page_size))
        throw ProtocolError(cat("post-copy: pending-page bitmap of ", bytes.size(), " bytes, our regions need ",
                                pending_bytes(regions, page_size)));
    std::vector<DirtyBitmap> out;
    size_t at = 0;
    for (const auto& r : regions) {
        const size_t pages = r.size / page_size;
        auto& b = out.emplace_back(pages, page_size);
        std::vector<uint64_t> words(b.words());
        std::memcpy(words.data(), bytes.data() + at, words.size() * 8);
        at += words.size() * 8;
        if (pages % 64 != 0 && !words.empty() && (words.back() >> (pages % 64)) != 0)
            throw ProtocolError(cat("post-copy: pending pages past the end of region '", r.name, "'"));
        b.merge_from(words.data(), words.size());
    }
    return out;
}

json fetch_request(uint32_t region, std::span<const uint64_t> pages) {
    return {{"op", "fetch"}, {"region", region}, {"pages", std::vector<uint64_t>(pages.begin(), pages.end())}};
}

Fetch parse_fetch(const json& msg, const std::vector<Region>& regions, size_t page_size) {
    Fetch f;
    const json& r = msg.contains("region") ? msg["region"] : json();
    const json& p = msg.contains("pages") ? msg["pages"] : json();
    if (!r.is_number_unsigned() || r.get<uint64_t>() >= regions.size())
        throw ProtocolError(cat("fetch: region must be 0..", regions.size() - 1));
    f.region = r.get<uint32_t>();
    if (!p.is_array() || p.empty() || p.size() > kMaxFetchPages)
        throw ProtocolError(cat("fetch: pages must list 1..", kMaxFetchPages, " pages"));
    const uint64_t limit = regions[f.region].size / page_size;
    for (const auto& e : p) {
        if (!e.is_number_unsigned() || e.get<uint64_t>() >= limit)
            throw ProtocolError(cat("fetch: page ", e.dump(), " is not in region '", regions[f.region].name, "' (",
                                    limit, " pages)"));
        f.pages.push_back(e.get<uint64_t>());
    }
    return f;
}

json read_regions_to_json(const std::vector<transport::RemoteRegion>& regions) {
    json list = json::array();
    for (const auto& r : regions) list.push_back({{"addr", r.addr}, {"size", r.size}, {"rkey", r.rkey}});
    return list;
}

std::vector<transport::RemoteRegion> parse_read_regions(const json& j, const std::vector<Region>& regions) {
    if (!j.is_array() || j.size() != regions.size())
        throw ProtocolError(cat("post-copy: reads must list ", regions.size(), " regions"));
    std::vector<transport::RemoteRegion> out;
    for (size_t i = 0; i < regions.size(); ++i) {
        const json& r = j[i];
        if (!r.is_object() || !r.contains("addr") || !r["addr"].is_number_unsigned() || !r.contains("size") ||
            !r["size"].is_number_unsigned() || !r.contains("rkey") || !r["rkey"].is_number_unsigned())
            throw ProtocolError(cat("post-copy: read region ", i, " is malformed"));
        transport::RemoteRegion rr{r["addr"].get<uint64_t>(), r["size"].get<uint64_t>(), r["rkey"].get<uint32_t>()};
        if (rr.size != regions[i].size)
            throw ProtocolError(cat("post-copy: region '", regions[i].name, "' exposed for reads with ", rr.size,
                                    " bytes, it has ", regions[i].size));
        out.push_back(rr);
    }
    return out;
}

json pull_offer_to_json(const std::vector<std::vector<transport::RemoteRegion>>& per_channel) {
    json list = json::array();
    for (const auto& regions : per_channel) list.push_back(read_regions_to_json(regions));
    return list;
}

std::vector<std::vector<transport::RemoteRegion>> parse_pull_offer(const json& j, const std::vector<Region>& regions,
                                                                   size_t channels) {
    if (!j.is_array() || j.size() != channels)
        throw ProtocolError(cat("post-copy: the pull offer must list ", channels, " data channels"));
    std::vector<std::vector<transport::RemoteRegion>> out;
    for (const auto& c : j) out.push_back(parse_read_regions(c, regions));
    return out;
}

}  // namespace rmig::engine
