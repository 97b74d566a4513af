// Backend tuning as given by a caller (command line, hw-configs profile,
// library user): option name -> value text, each checked against the table of
// the backend that owns the option (transport/backend.hpp) when it is set.
// The backend turns them into its typed options struct (rdma_options(),
// dpdk_options()), taking its table's default for an option not set.
//
// A setting for a backend other than the URI's is carried and ignored: a
// profile describes the hardware and may tune every backend
// (docs/architecture.md, "Adding a backend").
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/options.hpp"

namespace rmig::transport {

class BackendSettings {
public:
    // Sets backend option `name` ("rdma-slots") to `value` as typed on a
    // command line ("32", "1M"). Throws UsageError (message starting with
    // `origin`) when no backend has the option or the value is not one its
    // table accepts.
    void set(std::string_view name, const std::string& value, const std::string& origin = "");
    // Numbers for C++ callers: set("rdma-slots", 8).
    void set(std::string_view name, double value);
    // As set, or nullptr.
    const std::string* find(std::string_view name) const;
    bool empty() const { return values_.empty(); }
    const std::map<std::string, std::string, std::less<>>& values() const { return values_; }

    // For a backend reading its own table `group`: the value of option `name`
    // of it, or the table's default. A name not in the table is a programming
    // error (std::logic_error).
    std::string text(const OptionGroup& group, std::string_view name) const;
    uint64_t whole(const OptionGroup& group, std::string_view name) const;  // whole and size kinds
    double real(const OptionGroup& group, std::string_view name) const;     // any numeric kind

private:
    std::map<std::string, std::string, std::less<>> values_;
};

// The spec of option `name` in `group`; std::logic_error if there is none.
const OptionSpec& option_in(const OptionGroup& group, std::string_view name);

}  // namespace rmig::transport
