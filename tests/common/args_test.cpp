#include "common/args.hpp"

#include <gtest/gtest.h>

using namespace rmig;

namespace {
Args parse(std::vector<std::string> v) { return Args(v, {"qmp", "multifd", "chunk"}, {"no-resume"}); }
}  // namespace

TEST(Args, ValuesFlagsAndPositionals) {
    auto a = parse({"--qmp", "/run/q.sock", "--multifd=4", "--no-resume", "query-status"});
    EXPECT_EQ(a.required("qmp"), "/run/q.sock");
    EXPECT_EQ(a.number("multifd", 0), 4u);
    EXPECT_TRUE(a.flag("no-resume"));
    EXPECT_EQ(a.positional(), std::vector<std::string>{"query-status"});
    EXPECT_EQ(a.get_or("chunk", "1M"), "1M");
}

TEST(Args, UsageErrorsNameTheOption) {
    auto msg = [](std::vector<std::string> v) {
        try {
            auto a = parse(v);
            a.required("qmp");
            a.number("multifd", 0);
        } catch (const UsageError& e) {
            return std::string(e.what());
        }
        return std::string("(none)");
    };
    EXPECT_EQ(msg({"--bogus"}), "unknown option --bogus");
    EXPECT_EQ(msg({"--qmp"}), "option --qmp needs a value");
    EXPECT_EQ(msg({"--no-resume=1"}), "option --no-resume takes no value");
    EXPECT_EQ(msg({}), "missing required option --qmp");
    EXPECT_EQ(msg({"--qmp", "x", "--multifd", "-3"}), "option --multifd needs a whole number, not '-3'");
}
