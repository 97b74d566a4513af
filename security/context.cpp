#include "security/context.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "common/error.hpp"

namespace rmig::security {

namespace {

// TLS_AES_256_GCM_SHA384, the only suite we offer.
constexpr unsigned char kSuite[2] = {0x13, 0x02};

std::vector<unsigned char> decode_hex(const std::string& s) {
    std::vector<unsigned char> out;
    for (size_t i = 0; i + 1 < s.size(); i += 2)
        out.push_back(static_cast<unsigned char>(std::stoi(s.substr(i, 2), nullptr, 16)));
    return out;
}

SSL_SESSION* psk_session(SSL* ssl, const std::vector<unsigned char>& psk) {
    const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kSuite);
    if (!cipher) return nullptr;
    SSL_SESSION* s = SSL_SESSION_new();
    if (!s || !SSL_SESSION_set1_master_key(s, psk.data(), psk.size()) || !SSL_SESSION_set_cipher(s, cipher) ||
        !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
        SSL_SESSION_free(s);
        return nullptr;
    }
    return s;
}

const Context& context_of(SSL* ssl) {
    return *static_cast<const Context*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
}

int use_psk(SSL* ssl, const EVP_MD* md, const unsigned char** id, size_t* idlen, SSL_SESSION** sess) {
    const auto& cfg = context_of(ssl).config();
    const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kSuite);
    *sess = nullptr;
    *id = nullptr;
    *idlen = 0;
    if (!cipher || (md && md != SSL_CIPHER_get_handshake_digest(cipher))) return 1;  // no PSK for this hash
    *sess = psk_session(ssl, cfg.psk);
    if (!*sess) return 0;
    *id = reinterpret_cast<const unsigned char*>(cfg.psk_identity.data());
    *idlen = cfg.psk_identity.size();
    return 1;
}

int find_psk(SSL* ssl, const unsigned char* id, size_t idlen, SSL_SESSION** sess) {
    const auto& cfg = context_of(ssl).config();
    *sess = nullptr;
    if (std::string(reinterpret_cast<const char*>(id), idlen) != cfg.psk_identity) return 1;  // unknown identity
    *sess = psk_session(ssl, cfg.psk);
    return *sess ? 1 : 0;
}

}  // namespace

std::vector<unsigned char> read_psk_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(cat("cannot read the pre-shared key file ", path));
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text;
    for (char c : ss.str())
        if (!std::isspace(static_cast<unsigned char>(c))) text += c;
    std::vector<unsigned char> key;
    bool hex = !text.empty() && text.size() % 2 == 0 &&
               text.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
    if (hex) {
        key = decode_hex(text);
    } else {
        std::vector<unsigned char> out(text.size());
        int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
        if (n < 0 || text.size() % 4 != 0)
            throw Error(cat("pre-shared key file ", path, ": neither hex nor base64"));
        // EVP_DecodeBlock counts '=' padding as zero bytes.
        size_t pad = text.size() >= 2 ? (text.end()[-1] == '=') + (text.end()[-2] == '=') : 0;
        out.resize(static_cast<size_t>(n) - pad);
        key = std::move(out);
    }
    if (key.size() < 16)
        throw Error(cat("pre-shared key file ", path, ": ", key.size(),
                        " bytes of key, need at least 16 (e.g. `openssl rand -hex 32 > ", path, "`)"));
    return key;
}

std::shared_ptr<Context> Context::create(Config cfg) { return std::make_shared<Context>(std::move(cfg)); }

Context::Context(Config cfg) : cfg_(std::move(cfg)) {
    ctx_.reset(SSL_CTX_new(TLS_method()));
    if (!ctx_) throw Error(cat("creating the TLS context: ", openssl_errors()));
    SSL_CTX* c = ctx_.get();
    SSL_CTX_set_app_data(c, this);
    if (!SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(c, "TLS_AES_256_GCM_SHA384"))
        throw Error(cat("configuring TLS 1.3: ", openssl_errors()));
    SSL_CTX_set_num_tickets(c, 0);  // one handshake per session; nothing to resume
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    if (cfg_.mode == Config::Mode::psk) {
        if (!cfg_.peer_name.empty()) throw Error("a peer name applies to X.509 authentication only");
        if (cfg_.psk.size() < 16) throw Error("pre-shared key: need at least 16 bytes");
        if (cfg_.psk_identity.empty() || cfg_.psk_identity.size() > 128)
            throw Error("pre-shared key identity must be 1..128 bytes");
        SSL_CTX_set_psk_use_session_callback(c, use_psk);
        SSL_CTX_set_psk_find_session_callback(c, find_psk);
        return;
    }
    auto need = [](const std::string& f, const char* what) {
        if (f.empty()) throw Error(cat("X.509 authentication needs ", what));
    };
    need(cfg_.cert_file, "a certificate (--tls-cert)");
    need(cfg_.key_file, "a private key (--tls-key)");
    need(cfg_.ca_file, "a CA certificate to check the peer against (--tls-ca)");
    if (SSL_CTX_use_certificate_chain_file(c, cfg_.cert_file.c_str()) != 1)
        throw Error(cat("loading certificate ", cfg_.cert_file, ": ", openssl_errors()));
    if (SSL_CTX_use_PrivateKey_file(c, cfg_.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        throw Error(cat("loading private key ", cfg_.key_file, " (does it match certificate ", cfg_.cert_file,
                        "?): ", openssl_errors()));
    if (SSL_CTX_check_private_key(c) != 1)
        throw Error(cat("private key ", cfg_.key_file, " does not match certificate ", cfg_.cert_file, ": ",
                        openssl_errors()));
    if (SSL_CTX_load_verify_locations(c, cfg_.ca_file.c_str(), nullptr) != 1)
        throw Error(cat("loading CA certificates ", cfg_.ca_file, ": ", openssl_errors()));
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
}

std::string Context::describe() const {
    if (cfg_.mode == Config::Mode::psk) return cat("pre-shared key '", cfg_.psk_identity, "'");
    return cat("X.509 certificate ", cfg_.cert_file,
               cfg_.peer_name.empty() ? std::string() : cat(", peer '", cfg_.peer_name, "'"));
}

SslPtr Context::new_ssl(bool server) const {
    SslPtr ssl(SSL_new(ctx_.get()));
    if (!ssl) throw Error(cat("creating a TLS connection: ", openssl_errors()));
    if (!cfg_.peer_name.empty() && SSL_set1_host(ssl.get(), cfg_.peer_name.c_str()) != 1)
        throw Error(cat("setting the expected peer name '", cfg_.peer_name, "': ", openssl_errors()));
    if (server)
        SSL_set_accept_state(ssl.get());
    else
        SSL_set_connect_state(ssl.get());
    return ssl;
}

}  // namespace rmig::security
