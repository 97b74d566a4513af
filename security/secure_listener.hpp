// The listening side of security/: judges each hello against the policy,
// then authenticates the peer (TLS for a session's first control channel, the
// session token for any other channel) before the owner sees it.
// Each unfinished handshake has a worker of its own, within a deadline
// (Options::handshake_timeout) and within the listener's admission bounds
// (Options::pending, transport/admission.hpp): a stranger who stalls holds
// his own worker until newer arrivals push him out, and never delays a real
// peer's handshake. Channels naming an authenticated session are counted by
// session, apart from the strangers at their address (docs/security.md,
// "Listeners under a flood").
#pragma once

#include <memory>

#include "security/context.hpp"
#include "transport/channel.hpp"

namespace rmig::security {

// Wraps `inner`. With ctx == nullptr the listener runs plaintext and refuses
// hellos that ask for authentication; otherwise it refuses hellos without it.
// The Incoming it hands out is authenticated already: accept() lets the peer
// in (its `reply` must be the asked hello as the destination's, which every
// owner sends), refuse() turns it away with the status, as a hello refusal
// would.
std::unique_ptr<transport::Listener> secure_listener(std::unique_ptr<transport::Listener> inner,
                                                     std::shared_ptr<const Context> ctx,
                                                     const transport::Options& opts);

}  // namespace rmig::security
