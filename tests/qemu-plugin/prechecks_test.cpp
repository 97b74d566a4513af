#include "qemu-plugin/prechecks.hpp"

#include <gtest/gtest.h>

using namespace rmig::qemu;

namespace {

QemuInfo info(const std::string& state) {
    QemuInfo i;
    i.version = "7.2.22";
    i.machine_type = "pc-i440fx-7.2";
    i.ram_bytes = 128u << 20;
    i.ram_blocks = {{"pc.ram", 128u << 20, 4096}, {"pc.bios", 256u << 10, 4096}};
    i.run_state = state;
    return i;
}

std::string failed(const std::vector<Check>& checks) { return failures(checks); }

}  // namespace

TEST(Prechecks, IdenticalQemusPass) {
    auto c = check_pair(info("running"), info("inmigrate"));
    EXPECT_TRUE(all_ok(c)) << failed(c);
    EXPECT_TRUE(all_ok(check_pair(info("paused"), info("inmigrate"))));
}

TEST(Prechecks, EachMismatchSaysWhatDiffers) {
    auto d = info("inmigrate");
    d.version = "8.0.0";
    EXPECT_EQ(failed(check_pair(info("running"), d)), "qemu version: source 7.2.22, destination 8.0.0");

    d = info("inmigrate");
    d.machine_type = "pc-q35-7.2";
    EXPECT_EQ(failed(check_pair(info("running"), d)),
              "machine type: source pc-i440fx-7.2, destination pc-q35-7.2");

    d = info("inmigrate");
    d.ram_bytes = 256u << 20;
    d.ram_blocks[0].used_bytes = 256u << 20;
    EXPECT_EQ(failed(check_pair(info("running"), d)),
              "ram size: source 128.00 MiB, destination 256.00 MiB; ram blocks: 'pc.ram' is "
              "128.00 MiB on the source, 256.00 MiB on the destination");

    d = info("inmigrate");
    d.ram_blocks[0].name = "mem0";
    auto msg = failed(check_pair(info("running"), d));
    EXPECT_NE(msg.find("'pc.ram' only on the source"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'mem0' only on the destination"), std::string::npos) << msg;
}

TEST(Prechecks, StatesThatCannotMigrateAreRefusedWithAHint) {
    auto msg = failed(check_pair(info("running"), info("running")));
    EXPECT_NE(msg.find("start it with '-incoming defer'"), std::string::npos) << msg;
    msg = failed(check_pair(info("inmigrate"), info("inmigrate")));
    EXPECT_NE(msg.find("source QEMU is 'inmigrate'"), std::string::npos) << msg;
}

TEST(Prechecks, MultifdSettingsMustMatch) {
    MigrationSettings s, d;
    s.multifd_channels = 4;
    d.multifd_channels = 2;
    auto c = check_settings(s, d);
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.detail, "source has multifd with 4 channels, destination has multifd with 2 channels");
    d.multifd_channels = 4;
    EXPECT_TRUE(check_settings(s, d).ok);
    EXPECT_EQ(s.connections(), 5u);
    EXPECT_EQ(MigrationSettings{}.connections(), 1u);
    // QEMU's multifd-compression must match too: the destination decompresses.
    s.multifd_compression = "zstd";
    c = check_settings(s, d);
    EXPECT_FALSE(c.ok);
    EXPECT_EQ(c.detail, "source has multifd with 4 channels, zstd compression, destination has multifd with 4 channels");
}

TEST(MigrationSettings, RoundTripsThroughJson) {
    MigrationSettings s;
    s.multifd_channels = 8;
    s.max_bandwidth = 12345;
    s.downtime_limit_ms = 77;
    s.multifd_compression = "zstd";
    EXPECT_EQ(settings_from_json(to_json(s)), s);
    // An older peer says nothing of QEMU's compression: none.
    auto older = to_json(s);
    older.erase("multifd_compression");
    EXPECT_EQ(settings_from_json(older).multifd_compression, "none");
    EXPECT_THROW(settings_from_json(nlohmann::json{{"multifd_channels", "four"}}), rmig::ProtocolError);
}
