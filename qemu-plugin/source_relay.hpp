// Source side of channel mode: listens on the UNIX socket the source QEMU
// migrates to, and carries each connection QEMU opens (the main channel, then
// each multifd channel) across the link. Connection N is accepted and its rmig
// channel fully set up (the destination has connected its QEMU) before N+1 is
// accepted: QEMU 7.2's destination takes the first connection it sees as the
// main channel, so order must be kept end to end.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/unique_fd.hpp"
#include "qemu-plugin/stream_bridge.hpp"
#include "transport/channel.hpp"

namespace rmig::security {
class Context;  // security/context.hpp
}

namespace rmig::qemu {

struct RelayConfig {
    std::string dest_uri;          // where `rmig receive` listens
    wire::SessionId session{};
    uint32_t channels = 1;         // QEMU connections: 1 + multifd channels
    size_t chunk = kDefaultChunk;  // largest data frame
    transport::Options transport;
    // Authentication / encryption (security::connect/listen); unset: plaintext.
    std::shared_ptr<security::Context> security;
};

class SourceRelay {
public:
    // Binds `socket_path` now so QEMU can be told to migrate to it.
    SourceRelay(std::string socket_path, RelayConfig cfg);
    ~SourceRelay();

    void start();  // accepts in the background
    void abort(const std::string& why) { bridges_.fail(why); }
    const BridgeGroup& bridges() const { return bridges_; }
    uint32_t expected() const { return cfg_.channels; }
    const std::string& socket_path() const { return path_; }

private:
    void accept_loop();

    std::string path_;
    RelayConfig cfg_;
    UniqueFd listen_fd_;
    BridgeGroup bridges_;
    std::atomic<bool> stop_{false};
    std::jthread acceptor_;
};

}  // namespace rmig::qemu
