// TLS 1.3 carried over an rmig channel: OpenSSL runs on memory BIOs and each
// flight of TLS records travels as one CONTROL frame. Run on the control
// channel right after the wire hello; the result is the session secret both
// sides export (SSL_export_keying_material, label "EXPORTER-rmig-session",
// context = session id). The accepting side finishes by sending a TLS-protected
// confirmation that the connecting side waits for, so a connector learns of a
// rejected client certificate before it opens data channels.
#pragma once

#include <functional>
#include <memory>

#include "wire/handshake.hpp"
#include "security/context.hpp"
#include "security/secret.hpp"
#include "transport/channel.hpp"

namespace rmig::security {

// Throws AuthError naming the channel (wrong key, certificate, peer refusal,
// no answer within `timeout`); the peer is told why in an ABORT frame.
// The accepting side calls `before_confirm` with the secret before it
// confirms, so the session is known before the peer can open data channels.
SessionSecret authenticate_control(transport::Channel& ch, const Context& ctx, bool accepting,
                                   const wire::SessionId& session, transport::Millis timeout,
                                   const std::function<void(const SessionSecret&)>& before_confirm = {});

class TlsExchange;

// The accepting side in two steps, so that a listener can authenticate a
// peer before its owner decides on the channel: the constructor runs the
// handshake within `timeout` (throws AuthError, the peer told why) and
// exports the secret; confirm() then lets the peer in. An owner that turns
// the channel away sends an ABORT frame instead (rules::refusal_text).
// `ch` must outlive this object.
class AcceptedTls {
public:
    AcceptedTls(transport::Channel& ch, const Context& ctx, const wire::SessionId& session,
                transport::Millis timeout);
    ~AcceptedTls();
    AcceptedTls(const AcceptedTls&) = delete;
    AcceptedTls& operator=(const AcceptedTls&) = delete;

    const SessionSecret& secret() const { return secret_; }
    void confirm();

private:
    std::unique_ptr<TlsExchange> tls_;
    SessionSecret secret_;
};

}  // namespace rmig::security
