// Parsers for HMP "info ramblock" and QMP query-migrate, fed with output
// captured from Debian's QEMU 7.2.22 (qemu-system-x86_64 -accel tcg -m 64M).
#include <gtest/gtest.h>

#include "qemu-plugin/qemu_info.hpp"

namespace rmig::qemu {
namespace {

using nlohmann::json;

// human-monitor-command "info ramblock" on "-machine pc -m 64M", verbatim (CRLF).
const char* const kRamblockPc =
    "              Block Name    PSize              Offset               Used              Total\r\n"
    "                  pc.ram    4 KiB  0x0000000000000000 0x0000000004000000 0x0000000004000000\r\n"
    "    /rom@etc/acpi/tables    4 KiB  0x0000000004080000 0x0000000000020000 0x0000000000200000\r\n"
    "                 pc.bios    4 KiB  0x0000000004000000 0x0000000000040000 0x0000000000040000\r\n"
    "                  pc.rom    4 KiB  0x0000000004040000 0x0000000000020000 0x0000000000020000\r\n"
    "   /rom@etc/table-loader    4 KiB  0x0000000004280000 0x0000000000001000 0x0000000000010000\r\n"
    "      /rom@etc/acpi/rsdp    4 KiB  0x00000000042c0000 0x0000000000001000 0x0000000000001000\r\n";

// Same machine with "-object memory-backend-memfd,id=mem0,... -machine pc,memory-backend=mem0".
const char* const kRamblockMemfd =
    "              Block Name    PSize              Offset               Used              Total\r\n"
    "                    mem0    4 KiB  0x0000000000000000 0x0000000004000000 0x0000000004000000\r\n"
    "    /rom@etc/acpi/tables    4 KiB  0x0000000004080000 0x0000000000020000 0x0000000000200000\r\n";

TEST(ParseRamblocks, RealPcOutput) {
    auto blocks = parse_ramblocks(kRamblockPc);
    ASSERT_EQ(blocks.size(), 6u);
    EXPECT_EQ(blocks[0], (RamBlock{"pc.ram", 64u << 20, 4096}));
    EXPECT_EQ(blocks[1], (RamBlock{"/rom@etc/acpi/tables", 0x20000, 4096}));  // used, not total
    EXPECT_EQ(blocks[2], (RamBlock{"pc.bios", 256u << 10, 4096}));
    EXPECT_EQ(blocks[5], (RamBlock{"/rom@etc/acpi/rsdp", 0x1000, 4096}));
}

TEST(ParseRamblocks, RealMemfdBackend) {
    auto blocks = parse_ramblocks(kRamblockMemfd);
    ASSERT_EQ(blocks.size(), 2u);
    EXPECT_EQ(blocks[0].name, "mem0");
    EXPECT_EQ(blocks[0].used_bytes, 64u << 20);
}

TEST(ParseRamblocks, HugePagesLfSpacesInNameAndBlankLines) {
    // The layout QEMU's printf would give for hugetlbfs-backed and oddly named blocks.
    const char* text =
        "              Block Name    PSize              Offset               Used              Total\n"
        "\n"
        "                    mem0    2 MiB  0x0000000000000000 0x0000000040000000 0x0000000040000000\n"
        "                    big1    1 GiB  0x0000000040000000 0x0000000040000000 0x0000000040000000\n"
        "          my odd  block    64 KiB  0x0000000080000000 0x0000000000010000 0x0000000000010000\n"
        "   \n";
    auto blocks = parse_ramblocks(text);
    ASSERT_EQ(blocks.size(), 3u);
    EXPECT_EQ(blocks[0], (RamBlock{"mem0", 1u << 30, 2u << 20}));
    EXPECT_EQ(blocks[1].page_size, uint64_t{1} << 30);
    EXPECT_EQ(blocks[2], (RamBlock{"my odd  block", 64u << 10, 64u << 10}));
}

TEST(ParseRamblocks, RejectsWhatIsNotATable) {
    // Real HMP answer to an unknown command: HMP errors come back as text.
    EXPECT_THROW(parse_ramblocks("unknown command: 'info ramblok'\r\n"), ProtocolError);
    EXPECT_THROW(parse_ramblocks(""), ProtocolError);
    EXPECT_THROW(parse_ramblocks("              Block Name    PSize  Offset  Used  Total\r\n"),
                 ProtocolError);
    try {
        parse_ramblocks("  pc.ram    4 KiB  0x0 0xZZ 0x0\n");
        FAIL() << "no throw";
    } catch (const ProtocolError& e) {
        EXPECT_NE(std::string(e.what()).find("pc.ram    4 KiB  0x0 0xZZ 0x0"), std::string::npos)
            << e.what();
    }
    EXPECT_THROW(parse_ramblocks("  pc.ram    4 KQB  0x0 0x0 0x0\n"), ProtocolError);
}

// ---- query-migrate: "return" values captured on the source during real
// migrations over "migrate unix:..." (guest: a boot sector incrementing one
// byte in each 4 KiB page of 1..48 MiB, in a loop).

TEST(ParseMigrationStats, NoMigrationYet) {
    auto s = parse_migration_stats(json::parse("{}"));
    EXPECT_EQ(s.status, "none");
    EXPECT_FALSE(s.has_ram);
}

TEST(ParseMigrationStats, SetupHasNoRamSection) {
    auto s = parse_migration_stats(json::parse(R"({"status": "setup"})"));
    EXPECT_EQ(s.status, "setup");
    EXPECT_FALSE(s.has_ram);
    EXPECT_EQ(s.ram_total, 0u);
    EXPECT_EQ(s.total_time_ms, 0u);
}

TEST(ParseMigrationStats, ActivePrecopy) {
    auto s = parse_migration_stats(json::parse(R"({"expected-downtime": 734, "status": "active",
        "setup-time": 0, "total-time": 1514, "ram": {"total": 67641344, "postcopy-requests": 0,
        "dirty-sync-count": 3, "multifd-bytes": 0, "pages-per-second": 16360, "downtime-bytes": 0,
        "page-size": 4096, "remaining": 22478848, "postcopy-bytes": 0, "mbps": 537.1329599999999,
        "transferred": 107425056, "dirty-sync-missed-zero-copy": 0, "precopy-bytes": 107425056,
        "duplicate": 4397, "dirty-pages-rate": 16267, "skipped": 0, "normal-bytes": 107175936,
        "normal": 26166}})"));
    EXPECT_EQ(s.status, "active");
    EXPECT_EQ(s.expected_downtime_ms, 734u);
    EXPECT_EQ(s.total_time_ms, 1514u);
    EXPECT_EQ(s.setup_time_ms, 0u);
    EXPECT_EQ(s.downtime_ms, 0u);  // not reported while active
    ASSERT_TRUE(s.has_ram);
    EXPECT_EQ(s.ram_total, 67641344u);
    EXPECT_EQ(s.ram_remaining, 22478848u);
    EXPECT_EQ(s.ram_transferred, 107425056u);
    EXPECT_EQ(s.dirty_pages_rate, 16267u);
    EXPECT_EQ(s.dirty_sync_count, 3u);
    EXPECT_DOUBLE_EQ(s.mbps, 537.1329599999999);
    EXPECT_EQ(s.page_size, 4096u);
    EXPECT_EQ(s.multifd_bytes, 0u);
    EXPECT_EQ(s.error_desc, "");
    EXPECT_EQ(s.cpu_throttle_percentage, 0u);  // absent: auto-converge not throttling
}

TEST(ParseMigrationStats, AutoConvergeThrottling) {
    // QEMU adds the throttle at the top level once auto-converge slows the vCPUs.
    auto s = parse_migration_stats(json::parse(R"({"status": "active", "cpu-throttle-percentage": 46,
        "total-time": 9000, "ram": {"total": 67641344, "remaining": 4096, "dirty-sync-count": 9,
        "dirty-pages-rate": 30000, "page-size": 4096, "transferred": 1, "mbps": 100}})"));
    EXPECT_EQ(s.cpu_throttle_percentage, 46u);
}

TEST(ParseMigrationStats, Completed) {
    auto s = parse_migration_stats(json::parse(R"({"status": "completed", "setup-time": 0,
        "downtime": 19, "total-time": 4133, "ram": {"total": 67641344, "postcopy-requests": 0,
        "dirty-sync-count": 10, "multifd-bytes": 0, "pages-per-second": 65962,
        "downtime-bytes": 49379328, "page-size": 4096, "remaining": 0, "postcopy-bytes": 0,
        "mbps": 672.237135252843, "transferred": 347180944, "dirty-sync-missed-zero-copy": 0,
        "precopy-bytes": 297801616, "duplicate": 4397, "dirty-pages-rate": 0, "skipped": 0,
        "normal-bytes": 346464256, "normal": 84586}})"));
    EXPECT_EQ(s.status, "completed");
    EXPECT_EQ(s.downtime_ms, 19u);
    EXPECT_EQ(s.expected_downtime_ms, 0u);  // gone once completed
    EXPECT_EQ(s.total_time_ms, 4133u);
    EXPECT_EQ(s.ram_remaining, 0u);
    EXPECT_EQ(s.ram_transferred, 347180944u);
    EXPECT_EQ(s.dirty_sync_count, 10u);
}

TEST(ParseMigrationStats, MultifdActiveWithIntegerMbps) {
    // 2 multifd channels; note "mbps": 0 is an integer here, a float elsewhere.
    auto s = parse_migration_stats(json::parse(R"({"expected-downtime": 300, "status": "active",
        "setup-time": 2, "total-time": 103, "ram": {"total": 67641344, "postcopy-requests": 0,
        "dirty-sync-count": 1, "multifd-bytes": 33260800, "pages-per-second": 0,
        "downtime-bytes": 0, "page-size": 4096, "remaining": 33054720, "postcopy-bytes": 0,
        "mbps": 0, "transferred": 33262822, "dirty-sync-missed-zero-copy": 0,
        "precopy-bytes": 2022, "duplicate": 223, "dirty-pages-rate": 0, "skipped": 0,
        "normal-bytes": 33669120, "normal": 8220}})"));
    EXPECT_EQ(s.setup_time_ms, 2u);
    EXPECT_EQ(s.multifd_bytes, 33260800u);
    EXPECT_EQ(s.ram_transferred, 33262822u);  // includes the multifd bytes
    EXPECT_EQ(s.mbps, 0.0);
}

TEST(ParseMigrationStats, FailedHasOnlyStatusAndError) {
    auto s = parse_migration_stats(json::parse(
        R"({"status": "failed", "error-desc": "Unable to write to socket: Broken pipe"})"));
    EXPECT_EQ(s.status, "failed");
    EXPECT_EQ(s.error_desc, "Unable to write to socket: Broken pipe");
    EXPECT_FALSE(s.has_ram);
}

TEST(ParseMigrationStats, DestinationSide) {
    auto s = parse_migration_stats(json::parse(R"({"status": "completed"})"));
    EXPECT_EQ(s.status, "completed");
    EXPECT_FALSE(s.has_ram);
}

TEST(ParseMigrationStats, WrongTypesAreProtocolErrors) {
    EXPECT_THROW(parse_migration_stats(json::array()), ProtocolError);
    EXPECT_THROW(parse_migration_stats(json::parse(R"({"status": 3})")), ProtocolError);
    EXPECT_THROW(parse_migration_stats(json::parse(R"({"total-time": "x"})")), ProtocolError);
    EXPECT_THROW(parse_migration_stats(json::parse(R"({"ram": []})")), ProtocolError);
    // Negative signed values (QAPI declares several as int) clamp to 0.
    auto neg = parse_migration_stats(json::parse(R"({"expected-downtime": -1})"));
    EXPECT_EQ(neg.expected_downtime_ms, 0u);
}

// ---- QemuInfo across the link

QemuInfo sample_info() {
    QemuInfo info;
    info.version = "7.2.22";
    info.package = "Debian 1:7.2+dfsg-7+deb12u18+b3";
    info.machine_type = "pc-i440fx-7.2";
    info.ram_bytes = 64u << 20;
    info.ram_blocks = parse_ramblocks(kRamblockPc);
    info.run_state = "running";
    return info;
}

TEST(QemuInfoJson, RoundTripsThroughText) {
    QemuInfo info = sample_info();
    json j = json::parse(to_json(info).dump());
    EXPECT_EQ(j["ram_blocks"][0]["name"], "pc.ram");
    EXPECT_EQ(info_from_json(j), info);
}

TEST(QemuInfoJson, MissingOrMistypedFieldsAreProtocolErrors) {
    json good = to_json(sample_info());
    for (const char* key : {"version", "package", "machine_type", "ram_bytes", "ram_blocks",
                            "run_state"}) {
        json bad = good;
        bad.erase(key);
        EXPECT_THROW(info_from_json(bad), ProtocolError) << key;
    }
    json bad = good;
    bad["ram_bytes"] = "64M";
    EXPECT_THROW(info_from_json(bad), ProtocolError);
    bad = good;
    bad["ram_blocks"][0].erase("page_size");
    EXPECT_THROW(info_from_json(bad), ProtocolError);
    EXPECT_THROW(info_from_json(json::array()), ProtocolError);
}

}  // namespace
}  // namespace rmig::qemu
