// `rmig tunnel-receive`: the destination host's side of the tunnel
// (tunnel_send.hpp). One listener serves every session: each session names a
// socket, which is connected under `socket_dir` (the destination QEMU's
// incoming UNIX socket, e.g. libvirt's --migrateuri path), one connection per
// source connection, in the source's connect order, each once that socket
// exists. Sessions run side by side; a session's failure closes its own
// connections only (the destination QEMU's incoming migration fails and the
// management stack cleans it up).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>

#include "qemu-plugin/tunnel_report.hpp"
#include "transport/channel.hpp"

namespace rmig::security {
class Context;  // security/context.hpp
}

namespace rmig::qemu::tunnel {

struct ReceiveOptions {
    std::string listen_uri;  // "tcp:0.0.0.0:7071"
    std::string socket_dir;  // where the destination QEMUs' incoming sockets are
    size_t chunk = 0;        // 0: the default
    transport::Options transport;
    std::shared_ptr<security::Context> security;
    std::chrono::milliseconds stall_timeout{30000};
    // How long a session's first connection waits for its QEMU socket to exist.
    std::chrono::milliseconds socket_wait{30000};
    uint32_t max_sessions = 0;     // stop after this many sessions ended (0: until stopped)
    uint32_t max_concurrent = 32;  // sessions at once; more are refused as busy
};

// Listens, then serves until `stop` or max_sessions sessions ended.
// `on_listening` gets the bound address; `on_session_end` runs once per session.
void serve_receive(const ReceiveOptions& opts, std::stop_token stop,
                   const std::function<void(const std::string&)>& on_listening,
                   const std::function<void(const SessionReport&)>& on_session_end);

}  // namespace rmig::qemu::tunnel
