// Check of the disk that the libvirt lab's guest writes (guest/boot_sector.S
// built with -DDISK_WRITES, lab/libvirt/CMakeLists.txt): after pass c the
// guest fills sector 1 + (c % kDiskSlots) with 64 copies of the little-endian
// pair {kDiskMagic, c}. So a disk image taken from a stopped guest (or from the
// destination of a storage migration) holds, in sectors 1..kDiskSlots, the
// counters newest-kDiskSlots+1 ... newest, one per slot: a sector lost or left
// stale by a migration shows an older counter or none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rmig::lab::libvirt {

// Must match guest/boot_sector.S.
inline constexpr std::size_t kDiskSlots = 8;
inline constexpr std::size_t kSectorSize = 512;
inline constexpr std::uint32_t kDiskMagic = 0x47494d52;  // "RMIG"

struct DiskCheck {
    bool ok = false;
    std::string detail;          // one line: the state, or the first fault found
    std::uint32_t newest = 0;    // the highest pass count on the disk (if ok)
    explicit operator bool() const { return ok; }
};

// raw: the disk from byte 0 (e.g. `qemu-img convert -O raw`). Valid iff every
// slot sector holds 64 identical {kDiskMagic, c} pairs with c in the slot's
// residue class, and the slots' counters are exactly newest-7 ... newest
// (newest >= kDiskSlots: the guest writes hundreds of passes per second).
// Never throws for bad content.
DiskCheck check_disk_slots(std::span<const std::byte> raw);

}  // namespace rmig::lab::libvirt
