// What a program asks of security, before any file is read: the options every
// rmig program shares (rmig migrate/receive, rmig-synth, the C API's setters)
// and the one policy they all enforce (docs/security.md, "Policy"):
// credentials (a pre-shared key, or --tls-cert/--tls-key/--tls-ca) are
// required unless plaintext is asked for explicitly, and plaintext is accepted
// only for a loopback address.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/options.hpp"
#include "security/context.hpp"

namespace rmig {
class Args;  // common/args.hpp
}

namespace rmig::security {

// The pre-shared key's name when none is given (--psk-identity).
inline constexpr std::string_view kDefaultPskIdentity = "rmig";

struct Settings {
    std::optional<std::string> psk_file;
    std::optional<std::vector<unsigned char>> psk;  // a key handed over in memory (C API), instead of a file
    std::optional<std::string> psk_identity;
    std::optional<std::string> tls_cert, tls_key, tls_ca, tls_peer_name;
    bool no_encrypt = false;
    bool insecure_plaintext = false;

    // Sets option `name` (one of settings_options(), without the leading
    // "--"; `value` unless it is a flag); returns false when `name` is not a
    // security option.
    bool set(std::string_view name, const std::string& value = "");
};

// The security options, with their help: one group for every program that
// takes them (rmig migrate/receive, rmig-synth).
const OptionGroup& settings_options();

// The settings given in `args`, whose command includes settings_options().
Settings settings_from_args(const Args& args);

// The policy, without touching any file: throws Error saying what to pass
// when the settings are contradictory, when credentials are missing, or when
// plaintext is asked for on a non-loopback `uri`. Returns true when the run
// is plaintext (allowed). `uri_option` names the address in messages
// ("--to", "--listen", "the destination URI").
bool check_settings(const Settings& s, const std::string& uri, const std::string& uri_option);

// For reports: "pre-shared key 'rmig', encrypted", "X.509, authenticated only",
// "plaintext".
std::string describe(const Settings& s);

// check_settings, then the context (reads the key file, loads and checks the
// certificates); nullptr for an allowed plaintext run. Throws Error.
std::shared_ptr<Context> context_from_settings(const Settings& s, const std::string& uri,
                                               const std::string& uri_option);

}  // namespace rmig::security
