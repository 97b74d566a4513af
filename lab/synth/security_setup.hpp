// Hands rmig-synth's security options (checked against the policy when they
// were parsed) to a C API handle, source or destination alike.
#pragma once

#include "security/settings.hpp"

namespace rmig::synth {

template <class Handle, class Check>
void apply_security(const security::Settings& s, Handle* h, Check check,
                    int (*psk_file)(Handle*, const char*, const char*),
                    int (*tls)(Handle*, const char*, const char*, const char*, const char*),
                    int (*encrypt)(Handle*, int), int (*plaintext)(Handle*, int)) {
    if (s.psk_file) check(psk_file(h, s.psk_file->c_str(), s.psk_identity ? s.psk_identity->c_str() : nullptr));
    if (s.tls_cert)
        check(tls(h, s.tls_cert->c_str(), s.tls_key ? s.tls_key->c_str() : nullptr,
                  s.tls_ca ? s.tls_ca->c_str() : nullptr, s.tls_peer_name ? s.tls_peer_name->c_str() : nullptr));
    check(encrypt(h, s.no_encrypt ? 0 : 1));
    check(plaintext(h, s.insecure_plaintext ? 1 : 0));
}

}  // namespace rmig::synth
