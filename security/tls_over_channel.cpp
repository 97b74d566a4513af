#include "security/tls_over_channel.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>

#include "common/error.hpp"
#include "security/deadline.hpp"
#include "security/errors.hpp"
#include "security/handshake_rules.hpp"
#include "security/openssl_util.hpp"

namespace rmig::security {

namespace {

constexpr char kExporterLabel[] = "EXPORTER-rmig-session";
constexpr char kConfirm[] = "rmig-auth-ok";

std::span<const std::byte> bytes_of(const void* p, size_t n) { return {static_cast<const std::byte*>(p), n}; }

}  // namespace

class TlsExchange {
public:
    TlsExchange(transport::Channel& ch, const Context& ctx, bool accepting)
        : ch_(ch), ssl_(ctx.new_ssl(accepting)), accepting_(accepting), psk_(ctx.config().mode == Config::Mode::psk) {
        BIO* rbio = BIO_new(BIO_s_mem());
        BIO* wbio = BIO_new(BIO_s_mem());
        if (!rbio || !wbio) {
            BIO_free(rbio);
            BIO_free(wbio);
            throw Error(cat("allocating TLS buffers: ", openssl_errors()));
        }
        SSL_set_bio(ssl_.get(), rbio, wbio);  // ssl_ owns them now
        wbio_ = wbio;
        rbio_ = rbio;
    }

    void handshake() {
        for (;;) {
            ERR_clear_error();
            int r = SSL_do_handshake(ssl_.get());
            flush();
            if (r == 1) return;
            step(r, "TLS handshake");
        }
    }

    void send_confirmation() {
        ERR_clear_error();
        if (SSL_write(ssl_.get(), kConfirm, sizeof kConfirm - 1) <= 0) fail("sending the confirmation");
        flush();
    }

    void await_confirmation() {
        char buf[64];
        for (;;) {
            ERR_clear_error();
            int r = SSL_read(ssl_.get(), buf, sizeof buf);
            if (r > 0) {
                if (size_t(r) != sizeof kConfirm - 1 || std::memcmp(buf, kConfirm, r) != 0)
                    throw ProtocolError(cat(ch_.name(), ": unexpected data instead of the authentication confirmation"));
                return;
            }
            step(r, "waiting for the peer to confirm authentication");
        }
    }

    SessionSecret export_secret(const wire::SessionId& session) {
        SessionSecret s;
        if (SSL_export_keying_material(ssl_.get(), s.data(), s.size(), kExporterLabel, sizeof kExporterLabel - 1,
                                       reinterpret_cast<const unsigned char*>(session.data()), session.size(),
                                       1) != 1)
            fail("exporting the session secret");
        return s;
    }

private:
    // After a TLS call returned r <= 0: feed the next flight, or fail.
    void step(int r, const char* doing) {
        if (SSL_get_error(ssl_.get(), r) != SSL_ERROR_WANT_READ) fail(doing);
        std::vector<std::byte> frame;
        wire::FrameType t = ch_.recv(frame);
        if (t == wire::FrameType::abort) {
            std::string text = rules::text_of(frame);
            if (auto status = rules::parse_refusal(text))
                throw Refused(cat(ch_.name(), ": refused control channel: ", wire::to_string(*status)));
            throw AuthError(cat(ch_.name(), ": the peer refused authentication: ", text));
        }
        if (t != wire::FrameType::control)
            throw ProtocolError(cat(ch_.name(), ": ", wire::to_string(t), " frame during the TLS handshake"));
        if (frame.empty() || BIO_write(rbio_, frame.data(), static_cast<int>(frame.size())) != int(frame.size()))
            throw ProtocolError(cat(ch_.name(), ": empty or unusable TLS record frame"));
    }

    void flush() {
        char* p = nullptr;
        long n = BIO_get_mem_data(wbio_, &p);
        if (n <= 0) return;
        ch_.send(wire::FrameType::control, bytes_of(p, static_cast<size_t>(n)));
        (void)BIO_reset(wbio_);
    }

    [[noreturn]] void fail(const char* doing) {
        std::string why = openssl_errors();
        long verify = SSL_get_verify_result(ssl_.get());
        if (verify != X509_V_OK) why += cat(" (peer certificate: ", X509_verify_cert_error_string(verify), ")");
        if (psk_) why += " (with a pre-shared key this means the two sides use different keys or identities)";
        try {
            flush();  // the alert, so the peer's TLS stack knows too
            std::string msg = cat(accepting_ ? "receiver" : "sender", " rejected authentication: ", why);
            ch_.send(wire::FrameType::abort, bytes_of(msg.data(), msg.size()));
        } catch (const Error&) {
            // The peer is gone; our own error below is what matters.
        }
        throw AuthError(cat(ch_.name(), ": authentication failed (", doing, "): ", why));
    }

    transport::Channel& ch_;
    SslPtr ssl_;
    BIO* rbio_ = nullptr;
    BIO* wbio_ = nullptr;
    bool accepting_;
    bool psk_;
};

namespace {

// Runs `body` within `timeout` on `ch`; every failure but a refusal becomes an
// AuthError that says whether the time ran out.
template <class F> auto within_deadline(transport::Channel& ch, transport::Millis timeout, F&& body) {
    ChannelDeadline deadline(ch, timeout);
    try {
        return body();
    } catch (const AuthError&) {
        throw;
    } catch (const Refused&) {
        throw;
    } catch (const Error& e) {
        if (deadline.expired())
            throw AuthError(cat(ch.name(), ": authentication did not finish within ", timeout.count(),
                                " ms (is the peer an rmig with authentication on?)"));
        throw AuthError(cat("authentication: ", e.what()));
    }
}

}  // namespace

SessionSecret authenticate_control(transport::Channel& ch, const Context& ctx, bool accepting,
                                   const wire::SessionId& session, transport::Millis timeout,
                                   const std::function<void(const SessionSecret&)>& before_confirm) {
    return within_deadline(ch, timeout, [&] {
        TlsExchange tls(ch, ctx, accepting);
        tls.handshake();
        SessionSecret secret = tls.export_secret(session);
        if (accepting) {
            if (before_confirm) before_confirm(secret);
            tls.send_confirmation();
        } else {
            tls.await_confirmation();
        }
        return secret;
    });
}

AcceptedTls::AcceptedTls(transport::Channel& ch, const Context& ctx, const wire::SessionId& session,
                         transport::Millis timeout) {
    within_deadline(ch, timeout, [&] {
        tls_ = std::make_unique<TlsExchange>(ch, ctx, true);
        tls_->handshake();
        secret_ = tls_->export_secret(session);
        return 0;
    });
}

AcceptedTls::~AcceptedTls() = default;

void AcceptedTls::confirm() { tls_->send_confirmation(); }

}  // namespace rmig::security
