// `rmig tunnel-send`: the source host's side of a pure relay for management
// stacks that drive QEMU themselves (libvirt's `virsh migrate --migrateuri
// unix:///PATH`, KubeVirt's proxy). It listens on UNIX paths; each migration
// -- the connections one QEMU opens to a path, from the first until all have
// closed -- becomes one session to `rmig tunnel-receive`, which connects the
// destination QEMU's socket of the same name one to one, in connect order
// (QEMU tells main and multifd streams apart by their first bytes, but a
// postcopy-preempt channel only by order). It runs as a long-lived service:
// migrations on one path follow one another, paths run side by side.
// No QMP: the management stack owns both QEMUs; a failed session closes the
// source QEMU's connections and its migration fails (the guest keeps running).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "qemu-plugin/stream_group.hpp"
#include "qemu-plugin/tunnel_report.hpp"
#include "transport/channel.hpp"

namespace rmig::security {
class Context;  // security/context.hpp
}

namespace rmig::qemu::tunnel {

struct SendOptions {
    std::vector<std::string> unix_paths;  // where the source QEMUs connect; one listener each
    std::vector<std::string> dest_uris;   // `rmig tunnel-receive`: the first carries control; one per path/NIC
    uint32_t flows = 1;                   // per QEMU connection (at least one per destination address)
    FlowSettings flow;                    // window, grace, compression, chunk
    transport::Options transport;
    std::shared_ptr<security::Context> security;
    // Nothing moves on any stream of a session for this long (beyond the
    // reconnect grace): the session fails.
    std::chrono::milliseconds stall_timeout{30000};
    uint32_t max_sessions = 0;  // stop after this many sessions ended (0: until stopped)
};

// Serves until `stop` is requested or max_sessions sessions ended; sessions
// still running then are aborted. `on_session_end` runs once per session.
// Throws only if a path cannot be listened on.
void serve_send(const SendOptions& opts, std::stop_token stop,
                const std::function<void(const SessionReport&)>& on_session_end);

}  // namespace rmig::qemu::tunnel
