// The security options of `rmig migrate` and `rmig receive`: the shared
// options and policy of security/settings.hpp (the option group is
// security::settings_options()), read from a command's Args, with every
// violation reported as a UsageError (exit 2).
#pragma once

#include <memory>
#include <string>

#include "common/args.hpp"
#include "security/context.hpp"
#include "security/settings.hpp"

namespace rmig::cli {

// `uri` is the --to or --listen address (`uri_option` names it in errors).
// Returns nullptr for an allowed plaintext run; throws UsageError otherwise.
std::shared_ptr<security::Context> security_from_args(const Args& a, const std::string& uri,
                                                      const std::string& uri_option);

}  // namespace rmig::cli
