// Option tables: a program declares each command-line option once, with its
// kind of value, default, range or choices, help text and whether a
// hw-configs profile may set it; parsing (common/args.hpp), the checks and
// their messages, `--help` text and profile application all come from that
// declaration.
//
// Options come in groups (a std::span<const OptionSpec> and a heading), and a
// command lists the groups it takes: a group shared by several commands or
// programs (the security options, transport tuning, time limits) is declared
// once, by the module that owns the concept, and included wherever it
// applies. A module contributes its options by exporting such a group.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rmig {

enum class OptionKind : uint8_t {
    flag,     // --name, no value
    text,     // any string
    whole,    // a whole number in [min, max]
    integer,  // a whole number that may be negative, in [min, max]
    size,     // bytes, with K/M/G/T suffixes (common/units.hpp), in [min, max]
    real,     // a number that may have a fraction, in [min, max]
    choice,   // one of `choices`
};

struct OptionSpec {
    std::string_view name;  // without the leading "--"
    OptionKind kind = OptionKind::text;
    std::string_view metavar = {};  // the value in help: "--chunk SIZE"
    std::string_view help = {};     // one paragraph, without the default (added from below)
    // The default: `text_default` for text and choice options, `number_default`
    // for the numeric kinds (0 unless given). Where the real default is
    // computed elsewhere (the empty string, 0), `default_note` says what it is
    // ("from BDP"); "-" hides the default in help.
    std::string_view text_default = {};
    double number_default = 0;
    std::string_view default_note = {};
    double min = 0;  // numeric kinds: the accepted range, both ends included
    double max = std::numeric_limits<double>::infinity();
    std::string_view choices = {};  // choice: "auto|tty|line|none"
    bool required = false;
    bool profile = false;  // a hw-configs profile may set it (cli/profile.hpp)
};

struct OptionGroup {
    std::string_view heading;  // "security (docs/security.md); one of these is required"
    std::span<const OptionSpec> options;
};

struct CommandSpec {
    std::string_view name;      // "migrate"; empty for the program's only command
    std::string_view synopsis;  // after "usage: PROGRAM NAME ": "--qmp PATH --to URI [options]"
    std::string_view summary;   // one line, for the program's list of commands
    std::string_view about;     // paragraphs shown before the options, or empty
    std::vector<OptionGroup> groups;

    const OptionSpec* find(std::string_view option) const;  // nullptr: not an option of this command
};

struct ProgramSpec {
    std::string_view name;  // "rmig"
    std::vector<CommandSpec> commands;

    const CommandSpec* find(std::string_view command) const;
    // The first option spelled `option` in any command, and its command.
    const OptionSpec* find_option(std::string_view option, const CommandSpec** in = nullptr) const;
};

// Checks `value` of option `spec` (from the command line, or from `origin`,
// e.g. "profile dc-25g.json: ") and throws UsageError saying what to give.
void check_option_value(const OptionSpec& spec, const std::string& value, const std::string& origin = "");

// The parsed value of a checked text: any numeric kind, or exactly for whole
// and size options (size: in bytes).
double option_number(const OptionSpec& spec, const std::string& value);
uint64_t option_unsigned(const OptionSpec& spec, const std::string& value);

// The default as typed on a command line ("1M", "600", "auto"); empty if none.
std::string default_text(const OptionSpec& spec);

// "usage: ...", the command's about text, then each group: a heading and one
// entry per option with its help, default or "required", range or choices.
std::string command_help(const ProgramSpec& program, const CommandSpec& command);
// One group's entries (headed), as in command_help.
std::string group_help(const OptionGroup& group);
// Every command's usage and options, each group once (for programs whose
// --help shows it all, like rmig-synth).
std::string program_help(const ProgramSpec& program, std::string_view about);

}  // namespace rmig
