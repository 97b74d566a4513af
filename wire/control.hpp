// The control protocol both modes speak on the control channel (channel 0):
// one JSON object per CONTROL frame; requests {"op": ...} from the source and
// replies {"ok": true, ...} or {"ok": false, "error": "..."} from the
// destination. docs/wire-protocol.md lists each mode's operations.
// Encoding and validation only (no I/O): sending and receiving over a channel
// is transport/control_channel.hpp.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "wire/frame.hpp"

namespace rmig::wire {

// The payload of the CONTROL frame that carries `msg`.
std::string encode_control(const nlohmann::json& msg);

// The message in a frame received on the control channel named `channel`.
// Throws Error if the peer aborted (with its reason), LinkError if it ended
// the channel, ProtocolError on any other frame type or on anything that is
// not one JSON object.
nlohmann::json decode_control(FrameType type, std::span<const std::byte> payload, const std::string& channel);

// Throws Error carrying the reply's text unless `reply` (to `request`) says "ok": true.
void check_reply(const nlohmann::json& request, const nlohmann::json& reply);

}  // namespace rmig::wire
