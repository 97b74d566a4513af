// Destination side of channel mode: each data channel that arrives (in order,
// channel 1 = QEMU's main channel) is accepted (authenticated, when security
// is on) and then connected to the destination QEMU's incoming UNIX socket.
// The source opens channel N+1 only after channel N's handshake, and QEMU
// takes its connections in the order they come, so the order holds. A channel
// that fails authentication is turned away and the real one may still come.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "qemu-plugin/stream_bridge.hpp"
#include "transport/channel.hpp"

namespace rmig::qemu {

class DestRelay {
public:
    DestRelay(std::string qemu_socket, wire::SessionId session, uint32_t channels, size_t chunk);

    // Accepts or refuses one data channel; never throws for a bad peer.
    void offer(std::unique_ptr<transport::Incoming> in);
    void abort(const std::string& why) { bridges_.fail(why); }
    const BridgeGroup& bridges() const { return bridges_; }
    uint32_t expected() const { return channels_; }

private:
    std::string qemu_socket_;
    wire::SessionId session_;
    uint32_t channels_;
    uint32_t next_ = 1;
    BridgeGroup bridges_;
};

}  // namespace rmig::qemu
