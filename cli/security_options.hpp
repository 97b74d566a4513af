// The security options of `rmig migrate` and `rmig receive`: the shared
// options and policy of security/settings.hpp, read from a command's Args,
// with every violation reported as a UsageError (exit 2).
#pragma once

#include <iterator>
#include <memory>
#include <set>
#include <string>

#include "cli/args.hpp"
#include "security/context.hpp"
#include "security/settings.hpp"

namespace rmig::cli {

// Option names with values, and flags, to add to a command's Args.
inline const char* const (&kSecurityValueOptions)[6] = security::Settings::kValueOptions;
inline const char* const (&kSecurityFlags)[2] = security::Settings::kFlags;

// `uri` is the --to or --listen address (`uri_option` names it in errors).
// Returns nullptr for an allowed plaintext run; throws UsageError otherwise.
std::shared_ptr<security::Context> security_from_args(const Args& a, const std::string& uri,
                                                      const std::string& uri_option);

inline const char* const& kSecurityUsage = security::kSettingsUsage;

}  // namespace rmig::cli

namespace rmig::cli {

// `names` plus the security options with values / the security flags.
inline std::set<std::string> with_security_values(std::set<std::string> names) {
    names.insert(std::begin(kSecurityValueOptions), std::end(kSecurityValueOptions));
    return names;
}
inline std::set<std::string> with_security_flags(std::set<std::string> names) {
    names.insert(std::begin(kSecurityFlags), std::end(kSecurityFlags));
    return names;
}

}  // namespace rmig::cli
