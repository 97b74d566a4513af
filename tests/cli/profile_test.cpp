// hw-configs profiles applied to rmig's options (cli/profile.hpp): keys come
// from the option table, values are checked like the command line's.
#include "cli/profile.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "cli/options.hpp"

using namespace rmig;
using namespace rmig::cli;

namespace {

Args parse(const std::string& command, std::vector<std::string> v) {
    return Args(v, rmig_program(), *rmig_program().find(command));
}

std::string usage_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const UsageError& e) {
        return e.what();
    }
    return "(none)";
}

}  // namespace

TEST(Profile, FillsOnlyWhatTheCommandLineLeftOpen) {
    std::string path = "/tmp/rmig-profile-test.json";
    std::ofstream(path) << R"({"name": "t", "multifd": 8, "chunk": "2M"})";
    auto a = parse("migrate", {"--multifd", "2"});
    apply_profile(a, path);
    EXPECT_EQ(a.whole("multifd"), 2u);
    EXPECT_EQ(a.whole("chunk"), 2u << 20);
    EXPECT_EQ(a.whole("socket-buffer"), 8u << 20);  // the table's default
    std::ofstream(path) << R"({"turbo": true})";
    auto msg = usage_error([&] { apply_profile(a, path); });
    EXPECT_NE(msg.find("'turbo' is not an option a profile may set"), std::string::npos) << msg;
    EXPECT_NE(msg.find("rdma-slots"), std::string::npos) << msg;
    std::ofstream(path) << R"({"stall-timeout": 5})";  // an option, but not one a profile sets
    EXPECT_THROW(apply_profile(a, path), UsageError);
    std::ofstream(path) << R"({"rdma-slots": 1})";  // out of range: named with the file
    msg = usage_error([&] { apply_profile(a, path); });
    EXPECT_NE(msg.find("profile " + path + ": --rdma-slots 1 is out of range"), std::string::npos) << msg;
    EXPECT_THROW(apply_profile(a, "no-such-profile"), UsageError);
}

TEST(Profile, MigrateOnlyKeysAreIgnoredByReceive) {
    std::string path = "/tmp/rmig-profile-test-receive.json";
    std::ofstream(path) << R"({"multifd": 8, "max-bandwidth": "3G", "timeout": 900})";
    auto a = parse("receive", {});
    apply_profile(a, path);
    EXPECT_EQ(a.whole("timeout"), 900u);
    EXPECT_FALSE(a.get("multifd"));
}

TEST(Profile, ShippedProfilesAreValid) {
    for (auto name : {"loopback", "dc-25g", "dc-100g", "wan-100ms", "rxe-vm", "connectx-100g", "dpdk-memif",
                      "dpdk-af-packet"}) {
        auto m = parse("migrate", {});
        EXPECT_NO_THROW(apply_profile(m, name)) << name;
        EXPECT_GT(m.whole("multifd"), 0u) << name;
        auto r = parse("receive", {});
        EXPECT_NO_THROW(apply_profile(r, name)) << name;
    }
}
