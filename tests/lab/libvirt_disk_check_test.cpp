// check_disk_slots on synthetic disks: what the disk-writing guest leaves
// after m passes passes; a lost, stale, torn or misplaced sector does not.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "lab/libvirt/disk_check.hpp"

namespace {

using namespace rmig::lab::libvirt;

void put32(std::vector<std::byte>& d, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i) d[at + i] = std::byte((v >> (8 * i)) & 0xff);
}

void write_pass(std::vector<std::byte>& d, std::uint32_t c) {
    std::size_t sector = 1 + (c & (kDiskSlots - 1));
    for (std::size_t off = 0; off < kSectorSize; off += 8) {
        put32(d, sector * kSectorSize + off, kDiskMagic);
        put32(d, sector * kSectorSize + off + 4, c);
    }
}

// The disk after passes 1..m, as the guest writes it.
std::vector<std::byte> disk_after(std::uint32_t m) {
    std::vector<std::byte> d(64 * 1024);
    for (std::uint32_t c = 1; c <= m; ++c) write_pass(d, c);
    return d;
}

TEST(LibvirtDiskCheck, AcceptsWhatTheGuestWrites) {
    for (std::uint32_t m : {8u, 9u, 15u, 1000u, 0x10000u}) {
        auto r = check_disk_slots(disk_after(m));
        EXPECT_TRUE(r.ok) << m << ": " << r.detail;
        EXPECT_EQ(r.newest, m);
    }
}

TEST(LibvirtDiskCheck, RejectsABlankOrShortDisk) {
    EXPECT_FALSE(check_disk_slots(std::vector<std::byte>(64 * 1024)).ok);
    EXPECT_FALSE(check_disk_slots(disk_after(5)).ok);  // slots not all written yet
    EXPECT_FALSE(check_disk_slots(std::vector<std::byte>(1024)).ok);
}

TEST(LibvirtDiskCheck, RejectsAStaleSector) {
    auto d = disk_after(100);
    auto before = disk_after(90);  // one slot copied from an older state
    std::size_t s = 1 + (95 & (kDiskSlots - 1));
    std::copy_n(before.begin() + s * kSectorSize, kSectorSize, d.begin() + s * kSectorSize);
    auto r = check_disk_slots(d);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.detail.find("stale"), std::string::npos) << r.detail;
}

TEST(LibvirtDiskCheck, RejectsATornOrMisplacedSector) {
    auto torn = disk_after(100);
    put32(torn, 3 * kSectorSize + 256 + 4, 7);  // second half of a sector from another pass
    EXPECT_FALSE(check_disk_slots(torn).ok);
    auto misplaced = disk_after(100);
    std::copy_n(misplaced.begin() + 2 * kSectorSize, kSectorSize, misplaced.begin() + 5 * kSectorSize);
    EXPECT_FALSE(check_disk_slots(misplaced).ok);
}

}  // namespace
