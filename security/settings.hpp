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

#include "security/context.hpp"

namespace rmig::security {

struct Settings {
    std::optional<std::string> psk_file;
    std::optional<std::vector<unsigned char>> psk;  // a key handed over in memory (C API), instead of a file
    std::optional<std::string> psk_identity;
    std::optional<std::string> tls_cert, tls_key, tls_ca, tls_peer_name;
    bool no_encrypt = false;
    bool insecure_plaintext = false;

    // Command-line spelling, without the leading "--".
    static constexpr const char* kValueOptions[] = {"psk-file", "psk-identity", "tls-cert", "tls-key", "tls-ca",
                                                    "tls-peer-name"};
    static constexpr const char* kFlags[] = {"no-encrypt", "insecure-plaintext"};
    static bool takes_value(std::string_view name);
    static bool is_flag(std::string_view name);
    // Sets option `name` (a kValueOptions entry with `value`, or a kFlags
    // entry); returns false when `name` is not a security option.
    bool set(std::string_view name, const std::string& value = "");
};

// The option help shared by every program that takes them.
extern const char* const kSettingsUsage;

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
