// The security options of `rmig migrate` and `rmig receive` and the policy
// they enforce (docs/security.md): credentials (--psk-file [--psk-identity],
// or --tls-cert/--tls-key/--tls-ca) are required unless --insecure-plaintext
// is given, and that is accepted only for a loopback address.
#pragma once

#include <iterator>
#include <memory>
#include <set>
#include <string>

#include "cli/args.hpp"
#include "security/context.hpp"

namespace rmig::cli {

// Option names with values, and flags, to add to a command's Args.
inline const char* const kSecurityValueOptions[] = {"psk-file", "psk-identity", "tls-cert", "tls-key", "tls-ca",
                                                    "tls-peer-name"};
inline const char* const kSecurityFlags[] = {"no-encrypt", "insecure-plaintext"};

// `uri` is the --to or --listen address (`uri_option` names it in errors).
// Returns nullptr for an allowed plaintext run; throws UsageError otherwise.
std::shared_ptr<security::Context> security_from_args(const Args& a, const std::string& uri,
                                                      const std::string& uri_option);

extern const char* const kSecurityUsage;

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
