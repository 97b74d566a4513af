// The transport interface: every backend (tcp/, later rdma/ and dpdk/) gives
// ordered, reliable, framed, bidirectional channels that open with the wire
// handshake. Channel mode carries QEMU's migration streams over them; memory
// mode adds one-sided region writes (engine/).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/wire/frame.hpp"
#include "engine/wire/handshake.hpp"

namespace rmig::transport {

using Millis = std::chrono::milliseconds;

struct Options {
    int socket_buffer_bytes = 8 << 20;     // tcp: SO_SNDBUF/SO_RCVBUF
    Millis connect_timeout{10000};
    Millis handshake_timeout{10000};
    // A peer that stops acknowledging for this long is declared gone (tcp:
    // keepalive probes and TCP_USER_TIMEOUT), so a vanished host never hangs us.
    Millis dead_peer_timeout{20000};
};

// Thread safety: one thread may send while another receives; shutdown() may be
// called from any thread and makes blocked send/recv throw LinkError.
class Channel {
public:
    virtual ~Channel() = default;
    virtual void send(wire::FrameType type, std::span<const std::byte> payload) = 0;
    // Next frame in order, checksum verified; payload is resized to fit it.
    // Throws ProtocolError (bad frame) or LinkError (peer gone), naming the channel.
    virtual wire::FrameType recv(std::vector<std::byte>& payload) = 0;
    virtual void shutdown() = 0;
    virtual const wire::Hello& peer_hello() const = 0;
    virtual const std::string& name() const = 0;  // "tcp channel 2 to 10.0.0.2:7070"
};

// A connection request whose handshake has been read but not yet answered, so
// the receiver can first set up what the channel feeds (e.g. QEMU's socket).
class Incoming {
public:
    virtual ~Incoming() = default;
    virtual const wire::Hello& hello() const = 0;
    virtual const std::string& peer() const = 0;
    virtual std::unique_ptr<Channel> accept(const wire::Hello& reply) = 0;
    virtual void refuse(wire::HelloStatus status) = 0;
};

class Listener {
public:
    virtual ~Listener() = default;
    // Next handshake-complete request, or nullptr after `timeout`. A connection
    // whose hello is malformed is refused and logged, never returned.
    virtual std::unique_ptr<Incoming> next(Millis timeout) = 0;
    virtual std::string address() const = 0;  // "tcp:0.0.0.0:7070" with the real port
};

// URIs: "tcp:HOST:PORT" (a bare "HOST:PORT" means tcp). Port 0 picks a free one.
std::unique_ptr<Listener> listen(const std::string& uri, const Options& opts = {});
// Opens a channel and completes the handshake; throws Error with the peer's
// refusal reason if it does not accept.
std::unique_ptr<Channel> connect(const std::string& uri, const wire::Hello& hello,
                                 const Options& opts = {});

}  // namespace rmig::transport
