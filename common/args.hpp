// A small command-line parser: "--name value", "--name=value" and flags.
// Unknown options and missing values are usage errors (exit code 2 in rmig).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace rmig::cli {

class UsageError : public Error {
public:
    using Error::Error;
};

class Args {
public:
    // `with_value`: options that take a value; `flags`: options that do not.
    Args(const std::vector<std::string>& argv, const std::set<std::string>& with_value,
         const std::set<std::string>& flags);

    bool flag(const std::string& name) const { return flags_.count(name) > 0; }
    std::optional<std::string> get(const std::string& name) const;
    std::string get_or(const std::string& name, const std::string& def) const;
    std::string required(const std::string& name) const;
    uint64_t number(const std::string& name, uint64_t def) const;
    const std::vector<std::string>& positional() const { return positional_; }
    // Used for hw-configs profiles: applies only where the command line is silent.
    void set_default(const std::string& name, const std::string& value) { values_.emplace(name, value); }

private:
    std::map<std::string, std::string> values_;
    std::set<std::string> flags_;
    std::vector<std::string> positional_;
};

}  // namespace rmig::cli
