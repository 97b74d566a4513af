// security/ composed above transport/ (as Seastar's tls::wrap_client wraps a
// socket from above): transport::listen/connect are plain, and these are the
// entry points every user that needs the security policy calls instead.
//   ctx set:     every channel is authenticated (TLS 1.3 on the control
//                channel, a token on data channels) and, if the context says
//                so, encrypted; the listener refuses unauthenticated peers.
//   ctx == null: plaintext, and the listener refuses peers that ask for
//                authentication (so a secured source never talks to it).
// docs/security.md.
#pragma once

#include <memory>
#include <string>

#include "security/context.hpp"
#include "transport/channel.hpp"
#include "wire/handshake.hpp"

namespace rmig::security {

// transport::listen(uri, opts) wrapped by secure_listener() under `ctx`
// (handshakes time out after opts.handshake_timeout).
std::unique_ptr<transport::Listener> listen(const std::string& uri, const transport::Options& opts = {},
                                            std::shared_ptr<const Context> ctx = {});

// transport::connect(uri, offer(*ctx, hello), opts), then secure_connected();
// with ctx == null just transport::connect(uri, hello, opts).
std::unique_ptr<transport::Channel> connect(const std::string& uri, const wire::Hello& hello,
                                            const transport::Options& opts = {},
                                            const std::shared_ptr<const Context>& ctx = {});

}  // namespace rmig::security
