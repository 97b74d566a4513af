#include "lab/libvirt/disk_check.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "common/error.hpp"

namespace rmig::lab::libvirt {

namespace {

std::uint32_t le32(std::span<const std::byte> at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v |= std::uint32_t(std::to_integer<std::uint8_t>(at[i])) << (8 * i);
    return v;
}

DiskCheck fail(std::string why) { return DiskCheck{false, std::move(why), 0}; }

}  // namespace

DiskCheck check_disk_slots(std::span<const std::byte> raw) {
    if (raw.size() < (kDiskSlots + 1) * kSectorSize)
        return fail(cat("disk image of ", raw.size(), " bytes, need at least ", (kDiskSlots + 1) * kSectorSize,
                        " (boot sector and ", kDiskSlots, " slots)"));
    std::array<std::uint32_t, kDiskSlots> counter{};
    for (std::size_t slot = 0; slot < kDiskSlots; ++slot) {
        auto sector = raw.subspan((slot + 1) * kSectorSize, kSectorSize);
        std::uint32_t c = le32(sector.subspan(4));
        for (std::size_t off = 0; off < kSectorSize; off += 8) {
            std::uint32_t magic = le32(sector.subspan(off)), value = le32(sector.subspan(off + 4));
            if (magic != kDiskMagic || value != c)
                return fail(cat("sector ", slot + 1, " byte ", off, ": {", std::hex, magic, ", ", value,
                                "} where {", kDiskMagic, ", ", c, "} expected", std::dec,
                                magic == 0 ? " (slot never written, or a torn/stale sector)" : ""));
        }
        if ((c & (kDiskSlots - 1)) != slot)
            return fail(cat("sector ", slot + 1, " holds pass ", c, ", which the guest writes to sector ",
                            (c & (kDiskSlots - 1)) + 1));
        counter[slot] = c;
    }
    std::uint32_t newest = *std::max_element(counter.begin(), counter.end());
    if (newest < kDiskSlots) return fail(cat("newest pass ", newest, ": the guest has not filled its slots"));
    for (std::size_t slot = 0; slot < kDiskSlots; ++slot)
        if (newest - counter[slot] >= kDiskSlots)
            return fail(cat("sector ", slot + 1, " holds pass ", counter[slot], ", stale against the newest ",
                            newest, " (a write lost, or a sector older than the rest)"));
    return DiskCheck{true, cat("disk slots hold passes ", newest - kDiskSlots + 1, "..", newest), newest};
}

}  // namespace rmig::lab::libvirt
