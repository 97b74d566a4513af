#include "cli/security_options.hpp"

#include "security/policy.hpp"

namespace rmig::cli {

const char* const kSecurityUsage = R"(security (docs/security.md); one of these is required:
  --psk-file FILE        authenticate with a pre-shared key (hex or base64, at
                         least 16 bytes; make one with `openssl rand -hex 32`)
  --psk-identity ID      the key's name, the same on both sides, default rmig
  --tls-cert FILE --tls-key FILE --tls-ca FILE
                         authenticate with X.509 certificates (PEM), each side
                         checking the other's against the CA
  --tls-peer-name NAME   with --tls-*: also require the peer's certificate to
                         name NAME (subjectAltName, or CN); default: any the CA signed
  --insecure-plaintext   no authentication, no encryption: allowed only on a
                         loopback address (127.0.0.1, ::1, localhost)
  --no-encrypt           with credentials: authenticate, but carry data
                         channels unencrypted (both sides must agree)
)";

std::shared_ptr<security::Context> security_from_args(const Args& a, const std::string& uri,
                                                      const std::string& uri_option) {
    bool psk = a.get("psk-file").has_value();
    bool x509 = a.get("tls-cert") || a.get("tls-key") || a.get("tls-ca") || a.get("tls-peer-name");
    bool plaintext = a.flag("insecure-plaintext");
    if (psk && x509) throw UsageError("give either --psk-file or --tls-cert/--tls-key/--tls-ca, not both");
    if (plaintext) {
        if (psk || x509 || a.flag("no-encrypt"))
            throw UsageError("--insecure-plaintext cannot be combined with credentials or --no-encrypt");
        if (!security::is_loopback_uri(uri))
            throw UsageError(cat("--insecure-plaintext is allowed only on loopback, not ", uri_option, " ", uri,
                                 "; between hosts pass --psk-file FILE or --tls-cert/--tls-key/--tls-ca"));
        return nullptr;
    }
    if (!psk && !x509)
        throw UsageError(cat("rmig authenticates its peer: pass --psk-file FILE (the same key on both hosts; "
                             "make one with `openssl rand -hex 32 > FILE`) or --tls-cert/--tls-key/--tls-ca",
                             security::is_loopback_uri(uri)
                                 ? "; on loopback, --insecure-plaintext runs without security"
                                 : ""));
    if (a.get("psk-identity") && !psk) throw UsageError("--psk-identity needs --psk-file");
    security::Config c;
    c.encrypt = !a.flag("no-encrypt");
    try {
        if (psk) {
            c.mode = security::Config::Mode::psk;
            c.psk = security::read_psk_file(*a.get("psk-file"));
            c.psk_identity = a.get_or("psk-identity", "rmig");
        } else {
            c.mode = security::Config::Mode::x509;
            c.cert_file = a.required("tls-cert");
            c.key_file = a.required("tls-key");
            c.ca_file = a.required("tls-ca");
            c.peer_name = a.get_or("tls-peer-name", "");
        }
        return security::Context::create(std::move(c));
    } catch (const UsageError&) {
        throw;
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
}

}  // namespace rmig::cli
