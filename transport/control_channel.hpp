// Control messages (wire/control.hpp) sent and received over a Channel.
// These live in transport/, not wire/: wire/ is the layer below transport/
// (what the bytes mean, no I/O) and must not see a Channel, and transport/ is
// the lowest layer that does. Every user above calls them on whatever channel
// it holds (security/'s SecureChannel is a transport::Channel too).
#pragma once

#include <nlohmann/json.hpp>

#include "transport/channel.hpp"
#include "wire/control.hpp"

namespace rmig::transport {

void send_message(Channel& ch, const nlohmann::json& msg);
// Throws Error if the peer aborted (with its reason), LinkError if it ended
// the channel, ProtocolError on anything that is not one JSON object.
nlohmann::json recv_message(Channel& ch);
// send + recv; a reply with "ok": false becomes an Error carrying its text.
nlohmann::json request(Channel& ch, const nlohmann::json& msg);
// Consecutive DATA frames filling `into` exactly (a blob announced by a
// control message, sent in pieces of at most a frame), each read straight
// into place. Throws ProtocolError on another frame or on more bytes than
// announced (`what` names the blob), Error with `peer`'s reason on an abort.
void recv_pieces(Channel& ch, std::span<std::byte> into, const char* what, const char* peer);

}  // namespace rmig::transport
