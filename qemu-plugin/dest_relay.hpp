// Destination side of channel mode: each flow that arrives is accepted
// (authenticated, when security is on), names its stream in its attach frame,
// and joins that stream (StripedStream). The first flow of stream N connects
// the destination QEMU's incoming UNIX socket: the source opens stream N+1
// only after stream N's first flow was answered, and QEMU takes its
// connections in the order they come, so the order holds. Later flows of a
// stream, and flows that replace lost ones, just join it. A flow that fails
// authentication is turned away and the real one may still come.
#pragma once

#include <memory>
#include <string>

#include "qemu-plugin/stream_group.hpp"
#include "transport/channel.hpp"

namespace rmig::qemu {

class DestRelay {
public:
    DestRelay(std::string qemu_socket, wire::SessionId session, uint32_t channels, FlowSettings flow,
              transport::Millis attach_timeout = transport::Millis(10000));

    // Accepts or refuses one flow; never throws for a bad peer.
    void offer(std::unique_ptr<transport::Incoming> in);
    void abort(const std::string& why) { streams_.fail(why); }
    const StreamGroup& streams() const { return streams_; }
    uint32_t expected() const { return channels_; }

private:
    std::string qemu_socket_;
    wire::SessionId session_;
    uint32_t channels_;
    transport::Millis attach_timeout_;
    uint32_t next_ = 1;  // the next new stream
    StreamGroup streams_;
};

}  // namespace rmig::qemu
