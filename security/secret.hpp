// Key material that is wiped when it goes out of scope.
#pragma once

#include <openssl/crypto.h>

#include <array>
#include <cstddef>

namespace rmig::security {

template <size_t N> struct SecretBytes {
    std::array<unsigned char, N> bytes{};

    SecretBytes() = default;
    SecretBytes(const SecretBytes&) = default;
    SecretBytes& operator=(const SecretBytes&) = default;
    ~SecretBytes() { OPENSSL_cleanse(bytes.data(), N); }
    unsigned char* data() { return bytes.data(); }
    const unsigned char* data() const { return bytes.data(); }
    static constexpr size_t size() { return N; }
};

// What both ends of an authenticated session share: TLS 1.3's exporter output
// for label "EXPORTER-rmig-session" with the session id as context.
using SessionSecret = SecretBytes<32>;

}  // namespace rmig::security
