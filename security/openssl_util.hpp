// RAII owners for the OpenSSL objects security/ uses, and the one place that
// turns OpenSSL's error queue into text for our errors.
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace rmig::security {

template <auto Free> struct OsslDeleter {
    template <class T> void operator()(T* p) const { Free(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, OsslDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OsslDeleter<SSL_free>>;
using SslSessionPtr = std::unique_ptr<SSL_SESSION, OsslDeleter<SSL_SESSION_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, OsslDeleter<EVP_CIPHER_CTX_free>>;

// Drains OpenSSL's thread-local error queue: "reason; reason" or "no details".
std::string openssl_errors();

}  // namespace rmig::security
