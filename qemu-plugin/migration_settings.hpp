// The migration knobs rmig sets on both QEMUs, so that both sides agree
// (multifd on/off and channel count) and the source converges (bandwidth,
// downtime limit). Read back after applying, so a mismatch is caught.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "qemu-plugin/qmp_client.hpp"

namespace rmig::qemu {

struct MigrationSettings {
    uint32_t multifd_channels = 0;            // 0: multifd off
    uint64_t max_bandwidth = 10'000'000'000;  // bytes/s; QEMU 7.2's default (128 MiB/s) is too low
    uint64_t downtime_limit_ms = 300;
    // QEMU's own multifd-compression ("none", "zlib", "zstd"; multifd only):
    // QEMU's multifd threads compress straight from guest memory, the
    // cheapest place on a host short of cores (docs/compression.md).
    std::string multifd_compression = "none";
    // Auto-converge (source only): QEMU slows the vCPUs once a sync period
    // dirties more than half of what it sent, first to cpu-throttle-initial
    // percent, then by cpu-throttle-increment. rmig turns it on and plans the
    // two from its measurements (convergence_steering.hpp) unless the user
    // fixed them. Off is QEMU's default, and the lab's direct baseline;
    // `rmig migrate` turns it on unless told --no-auto-converge.
    bool auto_converge = false;
    uint32_t cpu_throttle_initial = 20;
    uint32_t cpu_throttle_increment = 10;
    // Post-copy (docs/postcopy.md): QEMU's postcopy-ram on both sides, so
    // that rmig may switch the migration to post-copy; and postcopy-preempt
    // (QEMU 7.1+), a second connection for the pages the destination faults
    // on, so they do not queue behind the background push.
    bool postcopy = false;
    bool postcopy_preempt = false;

    // QEMU opens the main connection, then one per multifd channel, or the
    // postcopy-preempt channel (QEMU 7.2 takes every later connection for a
    // multifd channel when multifd is on: the two do not mix).
    uint32_t connections() const {
        return (multifd_channels ? multifd_channels + 1 : 1) + (postcopy_preempt ? 1 : 0);
    }
    bool operator==(const MigrationSettings&) const = default;
};

nlohmann::json to_json(const MigrationSettings& s);
MigrationSettings settings_from_json(const nlohmann::json& j);

enum class Side { source, destination };
// Sets capabilities and parameters; the destination only needs multifd and
// post-copy's.
void apply_settings(QmpClient& qmp, const MigrationSettings& s, Side side);
// Whether this QEMU knows a migration capability (query-migrate-capabilities).
bool has_capability(QmpClient& qmp, const std::string& name);
// What QEMU now has (query-migrate-capabilities / query-migrate-parameters).
MigrationSettings read_settings(QmpClient& qmp);

}  // namespace rmig::qemu
