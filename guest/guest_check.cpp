#include "guest/guest_check.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace rmig::guest {

namespace {

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string hex8(std::uint8_t v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned>(v));
    return buf;
}

std::uint8_t u8(std::byte b) { return std::to_integer<std::uint8_t>(b); }

std::uint8_t inc(std::uint8_t v) { return static_cast<std::uint8_t>(v + 1U); }
std::uint8_t dec(std::uint8_t v) { return static_cast<std::uint8_t>(v - 1U); }

std::size_t page_address(std::size_t page) { return kPatternStart + page * kPageSize; }

// Offset of the first non-zero byte in [data, data+size), or size.
std::size_t first_nonzero(const std::byte* data, std::size_t size) {
    static const std::array<std::byte, kPageSize> zero{};
    std::size_t done = 0;
    while (done < size) {
        std::size_t n = std::min(size - done, zero.size());
        if (std::memcmp(data + done, zero.data(), n) != 0) {
            for (std::size_t i = 0; i < n; ++i)
                if (data[done + i] != std::byte{0}) return done + i;
        }
        done += n;
    }
    return size;
}

CheckResult fail(CheckResult r, std::size_t offset, std::string detail) {
    r.ok = false;
    r.bad_offset = offset;
    r.detail = std::move(detail);
    return r;
}

// Opens `path` for reading; `what` names the file in errors.
UniqueFd open_read(const std::string& path, const char* what) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno(cat("cannot open ", what, " '", path, "'"));
    return fd;
}

}  // namespace

CheckResult check_pattern(std::span<const std::byte> ram, const PatternOptions& opts) {
    CheckResult r;
    if (ram.size() < kPatternEnd)
        return fail(r, kNoOffset,
                    cat("memory dump too small: ", ram.size(), " bytes (", hex(ram.size()),
                        "), the pattern needs at least ", kPatternEnd, " bytes (",
                        hex(kPatternEnd), ")"));

    const std::uint8_t high = u8(ram[kPatternStart]);  // n+1, or the common value
    bool found_boundary = false;
    std::uint8_t low = high;
    std::size_t boundary = 0;

    for (std::size_t p = 0; p < kPatternPages; ++p) {
        const std::size_t addr = page_address(p);
        const std::uint8_t v = u8(ram[addr]);
        if (!found_boundary) {
            if (v != high) {
                if (v == dec(high)) {
                    found_boundary = true;
                    low = v;
                    boundary = p;
                } else if (v == inc(high)) {
                    return fail(r, addr,
                                cat("page ", hex(addr), " first byte ", hex8(v),
                                    " follows pages holding ", hex8(high), " from ",
                                    hex(kPatternStart),
                                    ": n pages before n+1 pages (the guest increments in "
                                    "ascending order, so n+1 must come first)"));
                } else {
                    return fail(r, addr,
                                cat("page ", hex(addr), " first byte ", hex8(v),
                                    " is outside {n+1, n} = {", hex8(high), ", ",
                                    hex8(dec(high)), "} (pages from ", hex(kPatternStart),
                                    " hold ", hex8(high), ")"));
                }
            }
        } else if (v != low) {
            if (v == high)
                return fail(r, addr,
                            cat("page ", hex(addr), " first byte ", hex8(v),
                                " is n+1 after n pages (", hex8(low), ") from page ",
                                hex(page_address(boundary)), ": a second boundary"));
            return fail(r, addr,
                        cat("page ", hex(addr), " first byte ", hex8(v),
                            " is outside {n+1, n} = {", hex8(high), ", ", hex8(low),
                            "} (n pages since ", hex(page_address(boundary)), ")"));
        }
        const std::size_t nz = first_nonzero(ram.data() + addr + 1, kPageSize - 1);
        if (nz != kPageSize - 1) {
            const std::size_t bad = addr + 1 + nz;
            return fail(r, bad,
                        cat("page ", hex(addr), " byte ", hex(bad), " is ", hex8(u8(ram[bad])),
                            ": only the first byte of a pattern page may be non-zero"));
        }
    }

    r.low_value = low;
    r.boundary_page = boundary;
    if (!found_boundary && high == 0 && opts.require_progress)
        return fail(r, kNoOffset,
                    cat("guest has not run: the first byte of every page in [",
                        hex(kPatternStart), ", ", hex(kPatternEnd), ") is 0"));

    r.ok = true;
    r.bad_offset = kNoOffset;
    if (found_boundary)
        r.detail = cat("pattern ok: n=", hex8(low), ", pages [", hex(kPatternStart), ", ",
                       hex(page_address(boundary)), ") hold n+1=", hex8(high), ", pages [",
                       hex(page_address(boundary)), ", ", hex(kPatternEnd), ") hold n (boundary page ",
                       boundary, " of ", kPatternPages, ")");
    else
        r.detail = cat("pattern ok: all ", kPatternPages, " pages hold n=", hex8(low),
                       " (stopped between passes)");
    return r;
}

CheckResult compare_dumps(std::span<const std::byte> a, std::span<const std::byte> b) {
    CheckResult r;
    const std::size_t common = std::min(a.size(), b.size());
    std::size_t last_page = kNoOffset;
    for (std::size_t off = 0; off < common; off += kPageSize) {
        const std::size_t n = std::min(kPageSize, common - off);
        if (std::memcmp(a.data() + off, b.data() + off, n) == 0) continue;
        for (std::size_t i = off; i < off + n; ++i) {
            if (a[i] == b[i]) continue;
            if (r.bad_offset == kNoOffset) r.bad_offset = i;
            ++r.differing_bytes;
            if (i / kPageSize != last_page) {
                last_page = i / kPageSize;
                ++r.differing_pages;
            }
        }
    }
    r.ok = a.size() == b.size() && r.differing_bytes == 0;
    if (r.ok) {
        r.detail = cat("dumps identical (", a.size(), " bytes)");
        return r;
    }
    std::string d;
    if (a.size() != b.size())
        d = cat("size mismatch: ", a.size(), " vs ", b.size(), " bytes; ");
    if (r.differing_bytes == 0) {
        d += cat("the first ", common, " bytes are identical");
    } else {
        const std::size_t off = r.bad_offset;
        d += cat(r.differing_bytes, " bytes differ in ", r.differing_pages,
                 " pages; first at offset ", hex(off), " (4 KiB page ",
                 hex(off & ~(kPageSize - 1)), "): ", hex8(u8(a[off])), " vs ", hex8(u8(b[off])));
    }
    r.detail = std::move(d);
    return r;
}

std::vector<std::byte> load_dump(const std::string& path) {
    UniqueFd fd = open_read(path, "memory dump");
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) throw_errno(cat("cannot stat memory dump '", path, "'"));
    std::vector<std::byte> data;
    // Regular files: read st_size bytes; anything else (a pipe): read to EOF.
    std::size_t cap = S_ISREG(st.st_mode) ? static_cast<std::size_t>(st.st_size) : 0;
    data.resize(std::max<std::size_t>(cap, 1 << 20));
    std::size_t used = 0;
    for (;;) {
        if (used == data.size()) data.resize(data.size() * 2);
        ssize_t n = ::read(fd.get(), data.data() + used, data.size() - used);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno(cat("cannot read memory dump '", path, "'"));
        }
        if (n == 0) break;
        used += static_cast<std::size_t>(n);
    }
    data.resize(used);
    return data;
}

std::size_t serial_marker_count(const std::string& path) {
    UniqueFd fd = open_read(path, "serial log");
    std::array<char, 64 * 1024> buf;
    std::size_t count = 0;
    for (;;) {
        ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno(cat("cannot read serial log '", path, "'"));
        }
        if (n == 0) break;
        count += static_cast<std::size_t>(std::count(buf.data(), buf.data() + n, kMarker));
    }
    return count;
}

std::string locate_guest_image() {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (const char* env = std::getenv("RMIG_GUEST_IMAGE"); env && *env) {
        if (fs::is_regular_file(env, ec)) return env;
        throw Error(cat("RMIG_GUEST_IMAGE='", env, "': no such file"));
    }
    std::vector<std::string> tried{kGuestImagePath};
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) tried.push_back((exe.parent_path() / kGuestImageName).string());
    tried.emplace_back(kGuestImageInstallPath);
    for (const auto& p : tried)
        if (fs::is_regular_file(p, ec)) return p;
    std::string list;
    for (const auto& p : tried) list += cat(list.empty() ? "" : ", ", p);
    throw Error(cat("test guest image ", kGuestImageName, " not found (tried ", list,
                    "; build target rmig_test_guest or set RMIG_GUEST_IMAGE)"));
}

std::string qemu_drive_option(const std::string& image) {
    std::string escaped;  // QEMU option syntax: a literal ',' is written ",,"
    for (char c : image) {
        escaped += c;
        if (c == ',') escaped += ',';
    }
    return cat("file=", escaped, ",format=raw,if=ide,file.locking=off");
}

}  // namespace rmig::guest
