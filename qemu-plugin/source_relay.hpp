// Source side of channel mode: listens on the UNIX socket the source QEMU
// migrates to, and carries each connection QEMU opens (the main channel, then
// each multifd channel) across the link as a stream of one or more flows
// (StripedStream). Connections are numbered in the order QEMU opens them
// and set up side by side (a long link would otherwise pay several round
// trips per connection, one after another); the destination connects its
// QEMU in that order (QEMU 7.2's destination takes the first connection it
// sees as the main channel). A stream's further flows, and flows that
// replace lost ones, connect in the background.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "qemu-plugin/stream_group.hpp"
#include "transport/channel.hpp"

namespace rmig::security {
class Context;  // security/context.hpp
}

namespace rmig::qemu {

struct RelayConfig {
    // Where `rmig receive` listens: one address per path (flow F of a stream
    // goes to dest_uris[F % size]); the first also carries the control channel.
    std::vector<std::string> dest_uris;
    wire::SessionId session{};
    uint32_t channels = 1;  // QEMU connections: 1 + multifd channels
    uint32_t flows = 1;     // flows per QEMU connection (at least one per path)
    FlowSettings flow;
    // How long a multifd stream drains QEMU's writes after a failure before
    // closing on it (FlowSettings::drain_on_abort).
    std::chrono::milliseconds multifd_drain{10000};
    // The socket buffers of QEMU's connections to the relay; 0: the link's
    // (transport.socket_buffer_bytes). Post-copy keeps them small: what QEMU
    // has written there it takes for sent.
    int qemu_socket_buffer_bytes = 0;
    transport::Options transport;
    // Authentication / encryption (security::connect/listen); unset: plaintext.
    std::shared_ptr<security::Context> security;
};

class SourceRelay {
public:
    // Binds `socket_path` now so QEMU can be told to migrate to it.
    SourceRelay(std::string socket_path, RelayConfig cfg);
    // Without a socket of its own: carries the connections handed to it
    // (carry_next), as `rmig tunnel-send`'s long-lived listener does.
    explicit SourceRelay(RelayConfig cfg);
    ~SourceRelay();

    void start();  // accepts in the background
    // Carries QEMU's next connection (numbered in the order handed in) in the
    // background; false if the relay already has cfg.channels of them.
    bool carry_next(UniqueFd qemu);
    uint32_t carried() const { return carried_; }  // connections handed to streams so far
    void abort(const std::string& why) { streams_.fail(why); }
    const StreamGroup& streams() const { return streams_; }
    uint32_t expected() const { return cfg_.channels; }
    const std::string& socket_path() const { return path_; }

private:
    void accept_loop();
    StripedStream::Opened open_flow(uint32_t stream, uint32_t flow, bool again);
    void carry(uint32_t stream, UniqueFd qemu);  // opens the stream's flows
    void open_more_flow(uint32_t stream, uint32_t flow);

    std::string path_;
    RelayConfig cfg_;
    UniqueFd listen_fd_;
    StreamGroup streams_;
    std::atomic<uint32_t> connections_{0};  // every connection gets its own channel id
    std::atomic<uint32_t> carried_{0};      // QEMU connections taken, the next one's stream id - 1
    std::atomic<bool> stop_{false};
    std::jthread acceptor_;
    std::vector<std::jthread> openers_;  // one per stream (carry)
};

}  // namespace rmig::qemu
