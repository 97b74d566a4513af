// Unit tests of the guest memory verifier on synthetic dumps.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "guest/guest_check.hpp"
#include "guest/guest_paths.hpp"

namespace rmig::guest {
namespace {

namespace fs = std::filesystem;

std::size_t addr_of(std::size_t page) { return kPatternStart + page * kPageSize; }

// A dump of kPatternEnd bytes (or more) that the tests shape page by page.
class PatternTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { ram_ = new std::vector<std::byte>(kPatternEnd); }
    static void TearDownTestSuite() {
        delete ram_;
        ram_ = nullptr;
    }
    void SetUp() override { std::fill(ram_->begin(), ram_->end(), std::byte{0}); }

    std::vector<std::byte>& ram() { return *ram_; }
    void set_first(std::size_t page, unsigned v) {
        ram()[addr_of(page)] = static_cast<std::byte>(v);
    }
    // Pages [0, boundary) hold `high`, pages [boundary, end) hold `low`.
    void fill(unsigned high, unsigned low, std::size_t boundary) {
        for (std::size_t p = 0; p < kPatternPages; ++p) set_first(p, p < boundary ? high : low);
    }

    static std::vector<std::byte>* ram_;
};
std::vector<std::byte>* PatternTest::ram_ = nullptr;

TEST(GuestConstants, MatchTheBootSector) {
    EXPECT_EQ(kPatternStart, 0x100000u);
    EXPECT_EQ(kPatternEnd, 0x6400000u);
    EXPECT_EQ(kPageSize, 4096u);
    EXPECT_EQ(kPatternPages, 25344u);
    EXPECT_EQ(kMarker, 'B');
}

// --- Valid states ------------------------------------------------------------

TEST_F(PatternTest, BoundaryInTheMiddle) {
    fill(7, 6, 1000);
    auto r = check_pattern(ram());
    ASSERT_TRUE(r.ok) << r.detail;
    EXPECT_TRUE(static_cast<bool>(r));
    EXPECT_EQ(r.low_value, 6);
    EXPECT_EQ(r.boundary_page, 1000u);
    EXPECT_EQ(r.bad_offset, kNoOffset);
    EXPECT_NE(r.detail.find("0x4e8000"), std::string::npos) << r.detail;  // 1 MiB + 1000 pages
}

TEST_F(PatternTest, AllEqualIsBoundaryAtPageZero) {
    fill(5, 5, 0);
    auto r = check_pattern(ram());
    ASSERT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(r.low_value, 5);
    EXPECT_EQ(r.boundary_page, 0u);
}

TEST_F(PatternTest, BoundaryAtFirstAndLastPage) {
    fill(9, 8, 1);
    auto r = check_pattern(ram());
    ASSERT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(r.boundary_page, 1u);
    EXPECT_EQ(r.low_value, 8);

    fill(9, 8, kPatternPages - 1);
    r = check_pattern(ram());
    ASSERT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(r.boundary_page, kPatternPages - 1);
}

TEST_F(PatternTest, WraparoundFrom255To0IsValid) {
    fill(0, 255, 300);
    auto r = check_pattern(ram());
    ASSERT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(r.low_value, 255);
    EXPECT_EQ(r.boundary_page, 300u);

    fill(255, 255, 0);
    r = check_pattern(ram());
    ASSERT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(r.low_value, 255);
}

TEST_F(PatternTest, FirstPassInProgressIsValid) {
    fill(1, 0, 12345);
    auto r = check_pattern(ram());
    ASSERT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(r.low_value, 0);
    EXPECT_EQ(r.boundary_page, 12345u);
}

TEST_F(PatternTest, BytesOutsideThePatternRangeAreIgnored) {
    fill(3, 2, 77);
    ram()[0] = std::byte{0xff};
    ram()[kPatternStart - 1] = std::byte{0x11};
    std::vector<std::byte> bigger(ram());
    bigger.resize(kPatternEnd + 3 * kPageSize, std::byte{0x5a});  // e.g. a 128 MiB dump
    auto r = check_pattern(bigger);
    ASSERT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(r.boundary_page, 77u);
}

// --- Guest has not run ---------------------------------------------------------

TEST_F(PatternTest, AllZeroMeansTheGuestHasNotRun) {
    auto r = check_pattern(ram());
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(static_cast<bool>(r));
    EXPECT_NE(r.detail.find("has not run"), std::string::npos) << r.detail;

    r = check_pattern(ram(), PatternOptions{.require_progress = false});
    EXPECT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(r.low_value, 0);
}

// --- First bytes outside {n, n+1} ----------------------------------------------

TEST_F(PatternTest, ValueOutsideBeforeTheBoundary) {
    fill(7, 6, 1000);
    set_first(500, 9);
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(500));
    EXPECT_NE(r.detail.find("0x2f4000"), std::string::npos) << r.detail;  // page address
    EXPECT_NE(r.detail.find("0x09"), std::string::npos) << r.detail;      // value found
    EXPECT_NE(r.detail.find("outside"), std::string::npos) << r.detail;
}

TEST_F(PatternTest, ValueOutsideAtTheBoundary) {
    fill(7, 6, 1000);
    set_first(1000, 4);  // skipped a value: neither 7 nor 6
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(1000));
    EXPECT_NE(r.detail.find("outside"), std::string::npos) << r.detail;
}

TEST_F(PatternTest, ValueOutsideAfterTheBoundary) {
    fill(7, 6, 1000);
    set_first(2000, 5);  // a stale page (n-1)
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(2000));
    EXPECT_NE(r.detail.find("0x05"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("outside"), std::string::npos) << r.detail;
}

TEST_F(PatternTest, ZeroPageAmongWrittenPages) {
    fill(7, 6, 1000);
    set_first(kPatternPages - 1, 0);  // e.g. a page the destination never received
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(kPatternPages - 1));
}

// --- Wrong order ---------------------------------------------------------------

TEST_F(PatternTest, NPagesBeforeNPlusOnePages) {
    fill(6, 7, 1000);
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(1000));
    EXPECT_NE(r.detail.find("n pages before n+1"), std::string::npos) << r.detail;
}

TEST_F(PatternTest, NPagesBeforeNPlusOnePagesAcrossTheWrap) {
    fill(255, 0, 10);
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(10));
    EXPECT_NE(r.detail.find("n pages before n+1"), std::string::npos) << r.detail;
}

TEST_F(PatternTest, SecondBoundary) {
    fill(7, 6, 1000);
    set_first(3000, 7);
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(3000));
    EXPECT_NE(r.detail.find("second boundary"), std::string::npos) << r.detail;
}

// --- Other bytes of pattern pages must be zero ------------------------------------

TEST_F(PatternTest, NonZeroOtherByte) {
    fill(7, 6, 1000);
    const std::size_t bad = addr_of(100) + 17;
    ram()[bad] = std::byte{0x42};
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, bad);
    EXPECT_NE(r.detail.find("0x164011"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("0x42"), std::string::npos) << r.detail;
}

TEST_F(PatternTest, NonZeroLastByteOfFirstAndLastPage) {
    fill(2, 1, 5);
    ram()[addr_of(0) + kPageSize - 1] = std::byte{1};
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(1) - 1);

    ram()[addr_of(0) + kPageSize - 1] = std::byte{0};
    ram()[kPatternEnd - 1] = std::byte{1};
    r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, kPatternEnd - 1);
}

TEST_F(PatternTest, NonZeroOtherByteEvenWhenNotRun) {
    ram()[addr_of(3) + 1] = std::byte{1};
    auto r = check_pattern(ram(), PatternOptions{.require_progress = false});
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(3) + 1);
}

TEST_F(PatternTest, ReportsTheFirstOffendingPage) {
    fill(7, 6, 1000);
    set_first(4000, 1);
    ram()[addr_of(2000) + 5] = std::byte{1};
    set_first(800, 1);
    auto r = check_pattern(ram());
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.bad_offset, addr_of(800));
}

// --- Dump size -------------------------------------------------------------------

TEST_F(PatternTest, TooSmallDump) {
    fill(7, 6, 1000);
    auto r = check_pattern(std::span<const std::byte>(ram()).first(kPatternEnd - 1));
    ASSERT_FALSE(r.ok);
    EXPECT_NE(r.detail.find("too small"), std::string::npos) << r.detail;

    r = check_pattern(std::span<const std::byte>());
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.detail.find("too small"), std::string::npos) << r.detail;
}

// --- compare_dumps --------------------------------------------------------------

std::vector<std::byte> pattern_bytes(std::size_t size) {
    std::vector<std::byte> v(size);
    for (std::size_t i = 0; i < size; ++i) v[i] = static_cast<std::byte>((i * 131) >> 3);
    return v;
}

TEST(CompareDumps, Identical) {
    auto a = pattern_bytes(64 * kPageSize + 123);
    auto b = a;
    auto r = compare_dumps(a, b);
    EXPECT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(r.differing_bytes, 0u);
    EXPECT_EQ(r.bad_offset, kNoOffset);

    EXPECT_TRUE(compare_dumps({}, {}).ok);
}

TEST(CompareDumps, OneDifferingByte) {
    auto a = pattern_bytes(64 * kPageSize);
    auto b = a;
    b[0x5123] ^= std::byte{0x80};
    auto r = compare_dumps(a, b);
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.differing_bytes, 1u);
    EXPECT_EQ(r.differing_pages, 1u);
    EXPECT_EQ(r.bad_offset, 0x5123u);
    EXPECT_NE(r.detail.find("1 bytes differ"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("0x5123"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("page 0x5000"), std::string::npos) << r.detail;
}

TEST(CompareDumps, CountsBytesAndPages) {
    auto a = pattern_bytes(64 * kPageSize);
    auto b = a;
    for (std::size_t off : {0x10u, 0x11u, 0xfffu, 0x3000u, 0x3ffffu}) b[off] ^= std::byte{1};
    auto r = compare_dumps(a, b);
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.differing_bytes, 5u);
    EXPECT_EQ(r.differing_pages, 3u);
    EXPECT_EQ(r.bad_offset, 0x10u);
    EXPECT_NE(r.detail.find("5 bytes differ in 3 pages"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("page 0x0)"), std::string::npos) << r.detail;
}

TEST(CompareDumps, SizeMismatchWithIdenticalPrefix) {
    auto a = pattern_bytes(8 * kPageSize);
    auto b = a;
    b.resize(7 * kPageSize);
    auto r = compare_dumps(a, b);
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.differing_bytes, 0u);
    EXPECT_NE(r.detail.find("size mismatch"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("32768"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("28672"), std::string::npos) << r.detail;

    EXPECT_FALSE(compare_dumps(b, a).ok);
    EXPECT_FALSE(compare_dumps(a, {}).ok);
}

TEST(CompareDumps, SizeMismatchAndDifferences) {
    auto a = pattern_bytes(8 * kPageSize);
    auto b = a;
    b.resize(9 * kPageSize);
    b[0x1fff] ^= std::byte{4};
    auto r = compare_dumps(a, b);
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.differing_bytes, 1u);
    EXPECT_EQ(r.bad_offset, 0x1fffu);
    EXPECT_NE(r.detail.find("size mismatch"), std::string::npos) << r.detail;
    EXPECT_NE(r.detail.find("0x1fff"), std::string::npos) << r.detail;
}

// --- Files -------------------------------------------------------------------------

class TempDir {
public:
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "rmig-guest-unit-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw Error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

TEST(GuestFiles, LoadDumpRoundTrip) {
    TempDir dir;
    std::string data(3 * 1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
    write_file(dir.file("dump"), data);
    auto dump = load_dump(dir.file("dump"));
    ASSERT_EQ(dump.size(), data.size());
    EXPECT_EQ(std::memcmp(dump.data(), data.data(), data.size()), 0);

    write_file(dir.file("empty"), "");
    EXPECT_TRUE(load_dump(dir.file("empty")).empty());
}

TEST(GuestFiles, LoadDumpMissingFileNamesThePath) {
    TempDir dir;
    const std::string path = dir.file("no-such-dump");
    try {
        load_dump(path);
        FAIL() << "expected rmig::Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
}

TEST(GuestFiles, SerialMarkerCount) {
    TempDir dir;
    write_file(dir.file("serial"), "");
    EXPECT_EQ(serial_marker_count(dir.file("serial")), 0u);
    write_file(dir.file("serial"), "BBBB");
    EXPECT_EQ(serial_marker_count(dir.file("serial")), 4u);
    write_file(dir.file("serial"), std::string("xB\nB\0B", 6) + std::string(200000, 'B'));
    EXPECT_EQ(serial_marker_count(dir.file("serial")), 200003u);
    EXPECT_THROW(serial_marker_count(dir.file("missing")), Error);
}

TEST(GuestFiles, BuiltImageIsABootSector) {
    ASSERT_TRUE(fs::exists(kGuestImagePath)) << kGuestImagePath;
    EXPECT_EQ(fs::file_size(kGuestImagePath), 512u);
    auto img = load_dump(kGuestImagePath);
    ASSERT_EQ(img.size(), 512u);
    EXPECT_EQ(img[510], std::byte{0x55});
    EXPECT_EQ(img[511], std::byte{0xaa});
}

TEST(GuestFiles, LocateGuestImage) {
    ::unsetenv("RMIG_GUEST_IMAGE");
    EXPECT_EQ(locate_guest_image(), std::string(kGuestImagePath));

    TempDir dir;
    write_file(dir.file("other.img"), std::string(512, '\0'));
    ::setenv("RMIG_GUEST_IMAGE", dir.file("other.img").c_str(), 1);
    EXPECT_EQ(locate_guest_image(), dir.file("other.img"));
    ::setenv("RMIG_GUEST_IMAGE", dir.file("missing.img").c_str(), 1);
    EXPECT_THROW(locate_guest_image(), Error);
    ::unsetenv("RMIG_GUEST_IMAGE");
}

TEST(GuestFiles, QemuDriveOption) {
    EXPECT_EQ(qemu_drive_option("/a/g.img"), "file=/a/g.img,format=raw,if=ide,file.locking=off");
    EXPECT_EQ(qemu_drive_option("/a,b/g.img"),
              "file=/a,,b/g.img,format=raw,if=ide,file.locking=off");
}

}  // namespace
}  // namespace rmig::guest
