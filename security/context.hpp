// A process's security settings: how it authenticates (TLS 1.3 with an
// external pre-shared key, or mutual X.509 certificates), whether data
// channels are encrypted, and the sessions it has authenticated as a
// connecting side. Pass a shared_ptr to one to security::listen/connect
// (secure_transport.hpp); they authenticate every channel (docs/security.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "security/openssl_util.hpp"
#include "security/session_table.hpp"

namespace rmig::security {

struct Config {
    enum class Mode { psk, x509 };
    Mode mode = Mode::psk;
    // psk: at least 16 bytes of key (docs/security.md: 32 random bytes, hex).
    std::vector<unsigned char> psk;
    std::string psk_identity = "rmig";
    // x509: PEM files; each side proves its key and checks the peer's chain against ca_file.
    std::string cert_file, key_file, ca_file;
    // x509, optional: the peer's certificate must be issued to this name
    // (subjectAltName DNS/IP, or CN without SANs). Empty: any certificate the CA signed.
    std::string peer_name;
    // false = authenticate only: data channels prove membership but are not
    // encrypted (the control channel always is).
    bool encrypt = true;
    // Where the transport has registered buffers (rdma), seal into and open
    // out of them directly (docs/security.md); false: the buffered path with
    // one more copy per frame, kept to measure what in-place saves.
    bool seal_in_place = true;
};

// Reads a PSK file: hex (64+ digits) or base64, whitespace ignored; at least
// 16 bytes of key. Throws Error naming the file and what is wrong with it.
std::vector<unsigned char> read_psk_file(const std::string& path);

class Context {
public:
    // Loads and checks the credentials (files readable, key matches certificate).
    static std::shared_ptr<Context> create(Config cfg);

    bool encrypt() const { return cfg_.encrypt; }
    const Config& config() const { return cfg_; }
    std::string describe() const;  // "pre-shared key 'rmig'", "X.509 certificate FILE"
    SslPtr new_ssl(bool server) const;
    SessionTable& connected_sessions() const { return *connected_; }

    explicit Context(Config cfg);  // use create()

private:
    Config cfg_;
    SslCtxPtr ctx_;
    std::shared_ptr<SessionTable> connected_ = std::make_shared<SessionTable>();
};

}  // namespace rmig::security
