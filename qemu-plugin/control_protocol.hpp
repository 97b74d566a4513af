// The control channel (channel 0) carries one JSON object per control frame:
// requests {"op": ...} from the source and replies {"ok": true, ...} or
// {"ok": false, "error": "..."} from the destination. docs/wire-protocol.md
// lists the operations.
#pragma once

#include <nlohmann/json.hpp>

#include "transport/channel.hpp"

namespace rmig::qemu {

void send_message(transport::Channel& ch, const nlohmann::json& msg);
// Throws Error if the peer aborted (with its reason), LinkError if it ended
// the channel, ProtocolError on anything that is not one JSON object.
nlohmann::json recv_message(transport::Channel& ch);
// send + recv; a reply with "ok": false becomes an Error carrying its text.
nlohmann::json request(transport::Channel& ch, const nlohmann::json& msg);

}  // namespace rmig::qemu
