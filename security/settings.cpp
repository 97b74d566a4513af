#include "security/settings.hpp"

#include <algorithm>
#include <iterator>

#include "common/args.hpp"
#include "common/error.hpp"
#include "security/policy.hpp"

namespace rmig::security {

const OptionGroup& settings_options() {
    using K = OptionKind;
    static constexpr OptionSpec kOptions[] = {
        {.name = "psk-file", .metavar = "FILE",
         .help = "authenticate with a pre-shared key (hex or base64, at least 16 bytes; make one with "
                 "`openssl rand -hex 32`)"},
        {.name = "psk-identity", .metavar = "ID", .help = "the key's name, the same on both sides",
         .text_default = kDefaultPskIdentity},
        {.name = "tls-cert", .metavar = "FILE",
         .help = "authenticate with X.509 certificates (PEM): this side's certificate; with --tls-key and "
                 "--tls-ca, each side checking the other's against the CA"},
        {.name = "tls-key", .metavar = "FILE", .help = "the private key of --tls-cert"},
        {.name = "tls-ca", .metavar = "FILE", .help = "the CA that signed the peer's certificate"},
        {.name = "tls-peer-name", .metavar = "NAME",
         .help = "with --tls-*: also require the peer's certificate to name NAME (subjectAltName, or CN)",
         .default_note = "any the CA signed"},
        {.name = "insecure-plaintext", .kind = K::flag,
         .help = "no authentication, no encryption: allowed only on a loopback address (127.0.0.1, ::1, "
                 "localhost)"},
        {.name = "no-encrypt", .kind = K::flag,
         .help = "with credentials: authenticate, but carry data channels unencrypted (both sides must agree)"},
    };
    static const OptionGroup kGroup{"security (docs/security.md); one of these is required", kOptions};
    return kGroup;
}

Settings settings_from_args(const Args& args) {
    Settings s;
    for (const auto& o : settings_options().options) {
        const std::string name(o.name);
        if (o.kind == OptionKind::flag) {
            if (args.flag(name)) s.set(name);
        } else if (auto v = args.get(name)) {
            s.set(name, *v);
        }
    }
    return s;
}

bool Settings::set(std::string_view name, const std::string& value) {
    if (name == "psk-file") psk_file = value;
    else if (name == "psk-identity") psk_identity = value;
    else if (name == "tls-cert") tls_cert = value;
    else if (name == "tls-key") tls_key = value;
    else if (name == "tls-ca") tls_ca = value;
    else if (name == "tls-peer-name") tls_peer_name = value;
    else if (name == "no-encrypt") no_encrypt = true;
    else if (name == "insecure-plaintext") insecure_plaintext = true;
    else return false;
    return true;
}

bool check_settings(const Settings& s, const std::string& uri, const std::string& uri_option) {
    const bool psk = s.psk_file || s.psk;
    const bool x509 = s.tls_cert || s.tls_key || s.tls_ca || s.tls_peer_name;
    if (s.psk_file && s.psk) throw Error("give the pre-shared key either as a file or in memory, not both");
    if (psk && x509) throw Error("give either --psk-file or --tls-cert/--tls-key/--tls-ca, not both");
    if (s.insecure_plaintext) {
        if (psk || x509 || s.no_encrypt)
            throw Error("--insecure-plaintext cannot be combined with credentials or --no-encrypt");
        if (!is_loopback_uri(uri))
            throw Error(cat("--insecure-plaintext is allowed only on loopback, not ", uri_option, " ", uri,
                            "; between hosts pass --psk-file FILE or --tls-cert/--tls-key/--tls-ca"));
        return true;
    }
    if (!psk && !x509)
        throw Error(cat("rmig authenticates its peer: pass --psk-file FILE (the same key on both hosts; "
                        "make one with `openssl rand -hex 32 > FILE`) or --tls-cert/--tls-key/--tls-ca",
                        is_loopback_uri(uri) ? "; on loopback, --insecure-plaintext runs without security" : ""));
    if (s.psk_identity && !psk) throw Error("--psk-identity needs --psk-file");
    if (x509 && !(s.tls_cert && s.tls_key && s.tls_ca))
        throw Error("X.509 needs all three of --tls-cert, --tls-key and --tls-ca");
    return false;
}

std::string describe(const Settings& s) {
    if (s.psk_file || s.psk)
        return cat("pre-shared key '", s.psk_identity.value_or(std::string(kDefaultPskIdentity)), "', ",
                   s.no_encrypt ? "authenticated only" : "encrypted");
    if (s.tls_cert) return cat("X.509, ", s.no_encrypt ? "authenticated only" : "encrypted");
    return "plaintext";
}

std::shared_ptr<Context> context_from_settings(const Settings& s, const std::string& uri,
                                               const std::string& uri_option) {
    if (check_settings(s, uri, uri_option)) return nullptr;
    Config c;
    c.encrypt = !s.no_encrypt;
    if (s.psk_file || s.psk) {
        c.mode = Config::Mode::psk;
        c.psk = s.psk ? *s.psk : read_psk_file(*s.psk_file);
        c.psk_identity = s.psk_identity.value_or(std::string(kDefaultPskIdentity));
    } else {
        c.mode = Config::Mode::x509;
        c.cert_file = *s.tls_cert;
        c.key_file = *s.tls_key;
        c.ca_file = *s.tls_ca;
        c.peer_name = s.tls_peer_name.value_or("");
    }
    return Context::create(std::move(c));
}

}  // namespace rmig::security
