// Option tables (common/options.hpp): parsing, checks and their messages,
// defaults and help, all from one declaration per option.
#include "common/options.hpp"

#include <gtest/gtest.h>

#include "common/args.hpp"

using namespace rmig;

namespace {

using K = OptionKind;

const OptionSpec kSend[] = {
    {.name = "to", .metavar = "URI", .help = "where to send", .required = true},
    {.name = "progress", .kind = K::choice, .metavar = "MODE", .help = "progress", .text_default = "auto",
     .choices = "auto|tty|none"},
};
const OptionSpec kRecv[] = {
    {.name = "listen", .metavar = "URI", .help = "where to listen", .required = true},
};
const OptionSpec kShared[] = {
    {.name = "chunk", .kind = K::size, .metavar = "SIZE", .help = "largest data frame", .number_default = 1 << 20,
     .min = 4096, .max = 16 << 20, .profile = true},
    {.name = "slots", .kind = K::whole, .metavar = "N", .help = "ring slots", .number_default = 16, .min = 2,
     .max = 4096},
    {.name = "level", .kind = K::integer, .metavar = "N", .help = "level", .min = -5, .max = 5},
    {.name = "fraction", .kind = K::real, .metavar = "F", .help = "a share", .number_default = 0.25, .max = 1},
    {.name = "verbose", .kind = K::flag, .help = "more logging"},
};

const ProgramSpec& program() {
    static const ProgramSpec p{"prog",
                               {{"send", "--to URI [options]", "sends", "", {{"send", kSend}, {"shared", kShared}}},
                                {"recv", "--listen URI [options]", "receives", "",
                                 {{"recv", kRecv}, {"shared", kShared}}}}};
    return p;
}

Args parse(const std::string& command, std::vector<std::string> v) {
    return Args(v, program(), *program().find(command));
}

std::string error_of(const std::string& command, std::vector<std::string> v) {
    try {
        parse(command, v).check_required();
    } catch (const UsageError& e) {
        return e.what();
    }
    return "(none)";
}

}  // namespace

TEST(OptionTable, ValuesAndDefaults) {
    auto a = parse("send", {"--to", "tcp:h:1", "--chunk=2M", "--level", "-3", "--verbose"});
    EXPECT_EQ(a.text("to"), "tcp:h:1");
    EXPECT_EQ(a.whole("chunk"), 2u << 20);
    EXPECT_EQ(a.whole("slots"), 16u);  // default
    EXPECT_EQ(a.integer("level"), -3);
    EXPECT_DOUBLE_EQ(a.real("fraction"), 0.25);
    EXPECT_EQ(a.text("progress"), "auto");
    EXPECT_TRUE(a.flag("verbose"));
    EXPECT_THROW(a.whole("listen"), std::logic_error);  // not an option of send: a programming error
}

TEST(OptionTable, ErrorsSayWhatToGive) {
    EXPECT_EQ(error_of("send", {"--to", "x", "--bogus"}), "unknown option --bogus");
    EXPECT_EQ(error_of("send", {"--to", "x", "--chunck", "1M"}), "unknown option --chunck; did you mean --chunk?");
    EXPECT_EQ(error_of("send", {"--listen", "x"}), "--listen is an option of 'prog recv', not of 'prog send'");
    EXPECT_EQ(error_of("send", {"--to"}), "option --to needs a value: --to URI");
    EXPECT_EQ(error_of("send", {"--verbose=1"}), "option --verbose takes no value");
    EXPECT_EQ(error_of("send", {}), "missing required option --to URI");
    EXPECT_EQ(error_of("send", {"--to", "x", "--slots", "1"}),
              "--slots 1 is out of range: give a whole number from 2 to 4096");
    EXPECT_EQ(error_of("send", {"--to", "x", "--slots", "-3"}), "option --slots needs a whole number, not '-3'");
    EXPECT_EQ(error_of("send", {"--to", "x", "--chunk", "1K"}),
              "--chunk 1K is out of range: give a size from 4K to 16M (K/M/G suffixes)");
    EXPECT_NE(error_of("send", {"--to", "x", "--chunk", "1Q"}).find("unknown suffix"), std::string::npos);
    EXPECT_EQ(error_of("send", {"--to", "x", "--fraction", "2"}),
              "--fraction 2 is out of range: give a number at most 1");
    EXPECT_EQ(error_of("send", {"--to", "x", "--progress", "fancy"}),
              "--progress 'fancy' is not valid: give auto, tty or none");
}

TEST(OptionTable, SetDefaultChecksAndNeverOverrides) {
    auto a = parse("send", {"--slots", "8"});
    a.set_default("slots", "32", "profile p: ");
    EXPECT_EQ(a.whole("slots"), 8u);
    a.set_default("chunk", "4M", "profile p: ");
    EXPECT_EQ(a.whole("chunk"), 4u << 20);
    try {
        a.set_default("fraction", "x", "profile p: ");
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_EQ(std::string(e.what()), "profile p: option --fraction needs a number, not 'x'");
    }
}

TEST(OptionTable, HelpComesFromTheTable) {
    std::string h = command_help(program(), *program().find("send"));
    EXPECT_NE(h.find("usage: prog send --to URI [options]"), std::string::npos) << h;
    EXPECT_NE(h.find("  --to URI               where to send; required\n"), std::string::npos) << h;
    EXPECT_NE(h.find("  --chunk SIZE           largest data frame; from 4K to 16M, default 1M\n"), std::string::npos)
        << h;
    EXPECT_NE(h.find("  --progress MODE        progress; auto, tty or none, default auto\n"), std::string::npos) << h;
    EXPECT_NE(h.find("  --fraction F           a share; at most 1, default 0.25\n"), std::string::npos) << h;
    EXPECT_NE(h.find("  --verbose              more logging\n"), std::string::npos) << h;
    EXPECT_EQ(h.find("--listen"), std::string::npos) << h;
    // Every command's usage; a group both list, once.
    std::string all = program_help(program(), "about");
    EXPECT_NE(all.find("       prog recv --listen URI"), std::string::npos) << all;
    EXPECT_EQ(all.find("--chunk"), all.rfind("--chunk")) << all;
}
