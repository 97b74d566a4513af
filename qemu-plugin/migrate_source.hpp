// The source side of a channel-mode migration, as `rmig migrate` runs it:
// connect to the destination's `rmig receive`, run the pre-migration checks,
// set both QEMUs up alike, relay QEMU's streams, follow progress, and make
// sure a failed migration leaves the source guest running.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qemu-plugin/blackout.hpp"
#include "qemu-plugin/convergence_steering.hpp"
#include "qemu-plugin/downtime_budget.hpp"
#include "qemu-plugin/link_tuning.hpp"
#include "qemu-plugin/migration_settings.hpp"
#include "qemu-plugin/prechecks.hpp"
#include "qemu-plugin/qemu_info.hpp"
#include "qemu-plugin/session_limits.hpp"
#include "qemu-plugin/stream_group.hpp"
#include "qemu-plugin/timeline.hpp"
#include "transport/channel.hpp"

namespace rmig::security {
class Context;  // security/context.hpp
}

namespace rmig::qemu {

struct SourceOptions {
    std::string qmp_path;    // the source QEMU's QMP socket
    std::string dest_uri;    // "tcp:HOST:PORT" of `rmig receive`
    MigrationSettings settings;
    std::string relay_dir;   // where the relay's UNIX socket goes; empty: a private temp dir
    bool resume_destination = true;
    std::chrono::seconds timeout{kDefaultTimeout};
    // No byte moved on any channel (or no reply from the destination) for this
    // long: the link is stalled; cancel the migration and keep the guest running.
    std::chrono::milliseconds stall_timeout{kDefaultStallTimeout};
    std::chrono::milliseconds poll_interval{100};
    size_t chunk = kDefaultChunk;
    // Flows (docs/flows.md): more addresses of `rmig receive`, one per extra
    // path; flows per QEMU connection (at least one per path); what each
    // stream keeps for resending; how long a lost connection may take to come
    // back (0: a lost connection fails the migration, as with QEMU itself).
    std::vector<std::string> more_paths;
    uint32_t flows = 1;
    size_t window_bytes = FlowSettings{}.window_bytes;
    std::chrono::milliseconds reconnect_grace{0};
    uint32_t control_reopened = 0;  // control connections lost and reopened within the grace
    engine::CompressionMode compression = engine::CompressionMode::none;
    // For experts and comparisons: QEMU gets exactly this downtime-limit, and
    // rmig neither steers it nor bounds its in-flight data. Unset: QEMU gets
    // what rmig's drain leaves of settings.downtime_limit_ms (docs/blackout.md).
    std::optional<uint64_t> qemu_downtime_limit_ms;
    // rmig plans QEMU's cpu-throttle-initial/increment from the link and the
    // dirty rate it measures (convergence_steering.hpp); false keeps the ones
    // in settings (the user fixed them).
    bool steer_throttle = true;
    // With settings.postcopy: switch to post-copy once QEMU has made this
    // many passes over the guest's RAM (0: at once); unset: once a pass
    // shows that pre-copy will not converge (docs/postcopy.md).
    std::optional<uint32_t> postcopy_after;
    // A source QEMU in postcopy-paused (a post-copy broke: the link past the
    // grace, or an rmig process died) is resumed over this new session:
    // migrate-recover on the destination, migrate with resume on the source
    // (docs/postcopy.md). `recover_only` refuses anything else, for a retry
    // loop that must never start a fresh migration.
    bool recover_only = false;
    transport::Options transport;
    // The data connections' congestion control: kCongestionAuto (bbr on a
    // long link), kCongestionHost, or a kernel module's name; and whether
    // transport.socket_buffer_bytes was chosen (else sized from the measured
    // round trip, link_tuning.hpp).
    std::string congestion = kCongestionAuto;
    bool socket_buffer_given = false;
    // Authentication / encryption (security::connect/listen); unset: plaintext.
    std::shared_ptr<security::Context> security;
};

struct Progress {
    MigrationStats qemu;
    uint64_t relay_bytes = 0;  // sent over the link so far, all channels
    uint32_t channels_up = 0;
    uint32_t channels = 0;
    // Compressed segments: their raw bytes, and what went on the wire for them.
    uint64_t packed_in = 0, packed_wire = 0;
    uint32_t reconnects = 0;   // flows reopened after a loss, all streams
    double elapsed_s = 0;
    // For metrics (migration_metrics.hpp): the session (hex, as in the
    // report) and each stream's stats, as summed above.
    std::string session;
    std::vector<ChannelStats> streams;
    // Whether pre-copy is converging, the forecast time to switchover, QEMU's throttle.
    ConvergenceView convergence;
};

// How pre-copy converged (or did not), for the report.
struct ConvergenceReport {
    bool steered = false;        // rmig planned QEMU's throttle parameters
    ThrottlePlan throttle;       // cpu-throttle-initial/increment last given to QEMU
    unsigned max_throttle = 0;   // the most QEMU throttled the vCPUs, percent
    ConvergenceView last;        // the last poll's view while QEMU was sending
};

// The switch to post-copy, when there was one.
struct PostcopyReport {
    bool switched = false;
    std::string reason;         // why rmig switched
    uint32_t after_passes = 0;  // QEMU's completed passes over RAM at the switch
    double switched_at_s = 0;   // on the report's wall_s clock
    double phase_s = 0;         // switch -> QEMU completed: the guest ran on the destination, pages following
    uint64_t requests = 0;      // pages the destination faulted on and asked for
    uint64_t bytes = 0;         // sent after the switch
    // Set by a run that resumed a broken post-copy (phase_s and bytes are
    // then this run's), and by the retry loop: its attempts, and what broke.
    bool recovered = false;
    uint32_t recovery_attempts = 0;
    std::string broke;
};

enum class Outcome {
    completed,       // guest runs (or waits, with --no-resume) on the destination
    refused,         // a pre-migration check failed; nothing was sent
    failed,          // migration failed; the source guest keeps running
    source_at_risk,  // failed and the source could not be confirmed running
};
const char* to_string(Outcome o);

struct SourceReport {
    Outcome outcome = Outcome::failed;
    std::string error;
    std::string session;
    std::vector<Check> checks;
    MigrationSettings settings;  // as asked; QEMU's own downtime-limit is budget.qemu_limit_ms
    MigrationStats final_stats;
    Blackout blackout;           // the guest's real stop, STOP -> RESUME
    // Every progress poll (bounded), on the clock of wall_s; its
    // switchover_stop_s places the blackout's STOP on that clock.
    Timeline timeline;
    DowntimeBudget budget;       // the last plan for QEMU's share of the downtime limit
    ConvergenceReport convergence;
    PostcopyReport postcopy;
    uint64_t in_flight_bytes = 0;  // sent but not yet in the destination QEMU, last seen
    uint64_t in_flight_cap = 0;    // per channel, as last set (0: the transport's default)
    double drain_rate = 0;         // bytes/s the destination took in, last measured
    std::vector<ChannelStats> channels;
    uint32_t flows = 1;            // per QEMU stream
    std::vector<std::string> paths;  // destination addresses the flows went to
    std::chrono::milliseconds reconnect_grace{0};
    uint32_t control_reopened = 0;  // control connections lost and reopened within the grace
    engine::CompressionMode compression = engine::CompressionMode::none;
    double wall_s = 0;
    double link_rtt_ms = 0;
    LinkTuning link_tuning;    // what the data connections got
    std::string source_state;  // query-status after the migration
    nlohmann::json destination;  // what the destination reported at the end
    nlohmann::json to_json() const;
};

SourceReport migrate(const SourceOptions& opts,
                     const std::function<void(const Progress&)>& on_progress);

}  // namespace rmig::qemu
