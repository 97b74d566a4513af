// Memory-mode post-copy on the wire (docs/memory-mode.md, "Post-copy"):
// the set of pages the destination does not have at the switch, the page
// requests of its faults, and where the source's memory may be read
// one-sided. Everything decoded here is untrusted input and checked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/dirty/dirty_bitmap.hpp"
#include "engine/memory/memory_layout.hpp"
#include "transport/channel.hpp"

namespace rmig::engine {

// The pending pages of every region, in region order: each region's bitmap
// words (KVM log layout, little-endian), concatenated.
std::vector<std::byte> encode_pending(const std::vector<DirtyBitmap>& pending);
// The inverse, against our regions; throws ProtocolError on a size mismatch
// or a bit set past a region's last page.
std::vector<DirtyBitmap> decode_pending(std::span<const std::byte> bytes, const std::vector<Region>& regions,
                                        size_t page_size);
size_t pending_bytes(const std::vector<Region>& regions, size_t page_size);

// {"op":"fetch","region":R,"pages":[P,...]}: the destination's guest
// touched these missing pages.
nlohmann::json fetch_request(uint32_t region, std::span<const uint64_t> pages);
struct Fetch {
    uint32_t region = 0;
    std::vector<uint64_t> pages;
};
// Throws ProtocolError on a region or page out of range, or more than
// kMaxFetchPages pages.
Fetch parse_fetch(const nlohmann::json& msg, const std::vector<Region>& regions, size_t page_size);
constexpr size_t kMaxFetchPages = 1024;

// Regions exposed for one-sided reads, one per region in order:
// [{"addr","size","rkey"}, ...].
nlohmann::json read_regions_to_json(const std::vector<transport::RemoteRegion>& regions);
std::vector<transport::RemoteRegion> parse_read_regions(const nlohmann::json& j, const std::vector<Region>& regions);

// The pull offer ("pull" in the source's postcopy message): its regions as
// exposed for reads on each data channel, in channel order: [[regions of
// channel 1], [regions of channel 2], ...]. A destination answering
// postcopy_started with "pull": true reads every pending page itself and the
// source pushes none; an older one ignores the offer and gets the push.
nlohmann::json pull_offer_to_json(const std::vector<std::vector<transport::RemoteRegion>>& per_channel);
// Throws ProtocolError unless it lists `channels` channels of our regions.
std::vector<std::vector<transport::RemoteRegion>> parse_pull_offer(const nlohmann::json& j,
                                                                   const std::vector<Region>& regions,
                                                                   size_t channels);

}  // namespace rmig::engine
