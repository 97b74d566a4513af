// Verifier for the memory of the rmig test guest (guest/boot_sector.S) after a
// migration: used by the e2e tests, the benchmarks and the demo.
//
// The guest loops forever over the 4 KiB pages of [kPatternStart, kPatternEnd),
// incrementing the first byte of each page in ascending order, and writes one
// kMarker byte to COM1 after every full pass. It writes nothing else in that
// range. So in any snapshot of a consistent guest (a stopped source, or a
// destination after a correct migration) the first bytes of the pattern pages
// read
//
//     n+1, n+1, ..., n+1, n, n, ..., n        (mod 256)
//                         ^ boundary_page
//
// and every other byte of those pages is zero. A lost or stale page breaks this
// with high probability: it shows an older value, a second boundary, or a value
// outside {n, n+1}.
//
// Two ways to check a migration:
//   - check_pattern() on the destination's memory (self-contained), and
//   - compare_dumps() of pmemsave dumps of the stopped source and of the
//     destination (started with -S, so it has not run after the switch-over).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "guest/guest_paths.hpp"  // generated: kGuestImagePath, kGuestImageInstallPath

namespace rmig::guest {

// Must match the constants of guest/boot_sector.S.
inline constexpr std::size_t kPatternStart = std::size_t{1} << 20;  // 1 MiB
inline constexpr std::size_t kPatternEnd = std::size_t{100} << 20;  // 100 MiB, exclusive
inline constexpr std::size_t kPageSize = 4096;
inline constexpr std::size_t kPatternPages = (kPatternEnd - kPatternStart) / kPageSize;  // 25344
inline constexpr char kMarker = 'B';  // written to port 0x3f8 after each full pass
// The guest needs at least this much RAM (-m); 128M is what the tests use.
inline constexpr std::size_t kMinGuestRam = kPatternEnd;

inline constexpr std::size_t kNoOffset = static_cast<std::size_t>(-1);

struct CheckResult {
    bool ok = false;
    // One line for logs and test failures. On failure it names the first
    // offending address and the values found/expected; on success it
    // summarises the state (n, boundary).
    std::string detail;

    // check_pattern(): n, the first byte of the pages at and after the boundary;
    // pages before it hold n+1 (mod 256). If every page holds the same value v
    // (the guest stopped between two passes), low_value is v and boundary_page 0.
    std::uint8_t low_value = 0;
    // check_pattern(): index of the first page holding n, counted from
    // kPatternStart (address = kPatternStart + boundary_page * kPageSize).
    std::size_t boundary_page = 0;

    // check_pattern(): address of the first offending byte (kNoOffset if ok).
    // compare_dumps(): offset of the first differing byte (kNoOffset if none).
    std::size_t bad_offset = kNoOffset;

    // compare_dumps(): differing bytes and 4 KiB pages over the common length.
    std::size_t differing_bytes = 0;
    std::size_t differing_pages = 0;

    explicit operator bool() const { return ok; }
};

struct PatternOptions {
    // When true (default), a dump whose pattern pages all have first byte 0 is
    // rejected as "guest has not run": a destination that received no memory
    // must not pass. The cost is a false rejection when the guest stopped
    // exactly between passes after a multiple of 256 passes: not rare, since a
    // vCPU is most often stopped at the pass boundary (the serial write exits
    // to QEMU), so about 1 in 256 snapshots. Set false when progress is known
    // otherwise (the source printed markers: lab::LocalPair::verify) or for a
    // guest that was never started.
    bool require_progress = true;
};

// ram: guest physical memory from address 0 (e.g. a pmemsave dump), at least
// kPatternEnd bytes; bytes beyond kPatternEnd are ignored. Valid iff the first
// bytes of the pattern pages are n+1 ... n+1 then n ... n (mod 256, including
// the wrap 0 ... 0, 255 ... 255; boundary at page 0 = all equal), every other
// byte of the pattern pages is zero, and (see PatternOptions) the guest ran.
// Never throws for bad content: ok=false with detail.
CheckResult check_pattern(std::span<const std::byte> ram, const PatternOptions& opts = {});

// Byte comparison of two memory dumps. ok iff same size and identical.
CheckResult compare_dumps(std::span<const std::byte> a, std::span<const std::byte> b);

// Reads a whole file (pmemsave output). Throws rmig::Error naming the path.
std::vector<std::byte> load_dump(const std::string& path);

// Number of kMarker bytes in a serial log (-serial file:PATH), i.e. completed
// passes since boot. Throws rmig::Error naming the path if it cannot be read.
std::size_t serial_marker_count(const std::string& path);

// Finds the test guest image: $RMIG_GUEST_IMAGE if set (must exist), else the
// build-tree image (kGuestImagePath), else rmig-test-guest.img beside the
// running executable, else the install path. Throws rmig::Error listing the
// places tried.
std::string locate_guest_image();

// QEMU -drive value for the image: "file=IMAGE,format=raw,if=ide,file.locking=off".
// Locking is off so that several QEMUs (parallel tests, source and destination)
// can use the one image: with locking on, a second running QEMU fails with
// 'Failed to get "write" lock'. The guest never writes to its disk.
std::string qemu_drive_option(const std::string& image);

}  // namespace rmig::guest
