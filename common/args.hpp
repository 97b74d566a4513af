// A small command-line parser: "--name value", "--name=value" and flags.
// Unknown options and missing values are usage errors (exit code 2,
// common/exit_codes.hpp). Used by rmig (cli/) and the lab programs (lab/).
//
// Given an option table (common/options.hpp), every value is checked as it is
// read, defaults come from the table, and the typed getters return them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/options.hpp"

namespace rmig {

class UsageError : public Error {
public:
    using Error::Error;
};

class Args {
public:
    // `with_value`: options that take a value; `flags`: options that do not.
    Args(const std::vector<std::string>& argv, const std::set<std::string>& with_value,
         const std::set<std::string>& flags);
    // The options of `command` (one of `program`'s): each value is checked
    // against its spec; an option of another command is named as such.
    Args(const std::vector<std::string>& argv, const ProgramSpec& program, const CommandSpec& command);

    bool flag(const std::string& name) const { return flags_.count(name) > 0; }
    // As given (on the command line or by set_default), without table defaults.
    std::optional<std::string> get(const std::string& name) const;
    std::string get_or(const std::string& name, const std::string& def) const;
    std::string required(const std::string& name) const;
    uint64_t number(const std::string& name, uint64_t def) const;
    const std::vector<std::string>& positional() const { return positional_; }
    // Used for hw-configs profiles: applies only where the command line is
    // silent. With a table, `value` is checked (errors start with `origin`).
    void set_default(const std::string& name, const std::string& value, const std::string& origin = "");

    // With a table: the value, or the option's default.
    std::string text(const std::string& name) const;
    uint64_t whole(const std::string& name) const;  // whole and size options
    int64_t integer(const std::string& name) const;
    double real(const std::string& name) const;
    // With a table: throws UsageError naming the first required option missing.
    void check_required() const;

    const ProgramSpec* program() const { return program_; }
    const CommandSpec* command() const { return command_; }

private:
    const OptionSpec& spec(const std::string& name) const;

    const ProgramSpec* program_ = nullptr;
    const CommandSpec* command_ = nullptr;
    std::map<std::string, std::string> values_;
    std::set<std::string> flags_;
    std::vector<std::string> positional_;
};

}  // namespace rmig
