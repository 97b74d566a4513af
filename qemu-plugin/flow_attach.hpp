// The attach exchange that opens each flow of channel mode's flow protocol
// (wire/stream_segment.hpp): the source names the stream and flow and says
// how much of the destination's stream it has delivered; the destination
// answers the same for the source's stream. Bounded by a deadline, so a peer
// that connects and goes silent cannot hold the exchange.
#pragma once

#include "transport/channel.hpp"
#include "wire/stream_segment.hpp"

namespace rmig::qemu {

// Source: sends `mine`, returns the destination's answer (same stream and
// flow, or ProtocolError).
wire::Attach exchange_attach(transport::Channel& ch, const wire::Attach& mine, transport::Millis timeout);
// Destination: the source's attach (first frame on a new flow).
wire::Attach read_attach(transport::Channel& ch, transport::Millis timeout);
void send_attach(transport::Channel& ch, const wire::Attach& mine);

}  // namespace rmig::qemu
