// The destination side of a channel-mode migration, as `rmig receive` runs it:
// listen for one source, answer its probes, set the destination QEMU up as
// asked, hand each data channel to QEMU's incoming socket in order, and at the
// end confirm the guest arrived (and resume it) before reporting success.
// The destination guest is never resumed unless QEMU finished loading it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qemu-plugin/session_limits.hpp"
#include "qemu-plugin/stream_group.hpp"
#include "transport/channel.hpp"

namespace rmig::security {
class Context;  // security/context.hpp
}

namespace rmig::qemu {

// What the destination has relayed so far, for metrics (migration_metrics.hpp).
struct DestProgress {
    std::string session;  // hex, as in the report
    std::vector<ChannelStats> streams;
    double elapsed_s = 0;  // since receive() started
};

struct DestOptions {
    std::string qmp_path;      // the destination QEMU's QMP socket
    std::string listen_uri;    // "tcp:0.0.0.0:7070"
    std::string incoming_dir;  // where QEMU's incoming UNIX socket goes; empty: a temp dir
    std::chrono::seconds timeout{kDefaultTimeout};  // for the whole session, including waiting for a source
    // Once a source is connected: nothing received or sent on any channel for
    // this long means a stalled link; give up (QEMU's incoming migration fails).
    std::chrono::milliseconds stall_timeout{kDefaultStallTimeout};
    size_t chunk = kDefaultChunk;
    transport::Options transport;
    // Authentication / encryption (security::connect/listen); unset: plaintext.
    std::shared_ptr<security::Context> security;
    // Called every 50 ms or so while the relay runs, from a thread of the
    // session's own; must be quick and must not throw.
    std::function<void(const DestProgress&)> on_progress;
};

struct DestReport {
    bool ok = false;
    std::string error;
    std::string session;
    std::string source_peer;
    std::string final_state;  // destination QEMU query-status at the end
    // Set on a success the source may not know of: the guest was resumed
    // here, and the answer that says so was lost (the source stays paused).
    std::string warning;
    // Post-copy broke and QEMU was left for a recovery (postcopy-paused, or
    // getting there): a recovery session (the source's rmig, `prepare` with
    // "recover") can resume it.
    bool postcopy_paused = false;
    // This session resumed a broken post-copy (migrate-recover).
    bool recovered = false;
    nlohmann::json to_json() const;
};

// `on_listening` gets the bound address (with the real port) once listening.
DestReport receive(const DestOptions& opts,
                   const std::function<void(const std::string&)>& on_listening);

}  // namespace rmig::qemu
