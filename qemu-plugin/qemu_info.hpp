// What rmig needs to know about a QEMU before and during a migration: its
// identity and memory layout (exchanged between source and destination so a
// mismatch is caught before any page is sent), and query-migrate statistics.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qemu-plugin/qmp_client.hpp"

namespace rmig::qemu {

// One line of HMP "info ramblock".
struct RamBlock {
    std::string name;         // e.g. "pc.ram", "/rom@etc/acpi/tables", a backend id
    uint64_t used_bytes = 0;  // "Used" column: what migration transfers
    uint64_t page_size = 0;   // "PSize" column in bytes (4096, or a huge page size)
    bool operator==(const RamBlock&) const = default;
};

struct QemuInfo {
    std::string version;       // "7.2.22"
    std::string package;       // "Debian 1:7.2+dfsg-7+deb12u18+b3"
    std::string machine_type;  // "pc-i440fx-7.2" (QOM type without "-machine")
    uint64_t ram_bytes = 0;    // base + hot-plugged guest RAM
    std::vector<RamBlock> ram_blocks;
    std::string run_state;     // query-status "status": "running", "paused", "inmigrate"...
    bool operator==(const QemuInfo&) const = default;
};

// Asks QEMU; throws QmpError / LinkError from the client, ProtocolError on
// replies of an unexpected shape.
QemuInfo probe(QmpClient& qmp);

// Parses HMP "info ramblock" output (header line, one block per line;
// "\r\n" tolerated; names may contain spaces). Throws ProtocolError naming
// the first line it cannot read, or when no block is found.
std::vector<RamBlock> parse_ramblocks(const std::string& hmp_text);

// For sending across the rmig link. info_from_json throws ProtocolError if a
// field is missing or has the wrong type.
nlohmann::json to_json(const QemuInfo& info);
QemuInfo info_from_json(const nlohmann::json& j);

// query-migrate, flattened. Fields QEMU did not report stay 0 / empty: the
// "ram" section is absent in "setup", "failed" and on the destination,
// "downtime" appears only once "completed", "expected-downtime" only while
// "active", "error-desc" only when "failed".
struct MigrationStats {
    std::string status;  // "none" when QEMU returns {} (no migration yet)
    uint64_t total_time_ms = 0;
    uint64_t setup_time_ms = 0;
    uint64_t downtime_ms = 0;
    uint64_t expected_downtime_ms = 0;
    bool has_ram = false;  // whether the "ram" section was present
    uint64_t ram_transferred = 0;  // bytes, all channels
    uint64_t ram_remaining = 0;
    uint64_t ram_total = 0;
    uint64_t dirty_pages_rate = 0;  // pages/s, measured over the last sync period
    uint64_t dirty_sync_count = 0;  // number of dirty-bitmap syncs (~ iterations)
    double mbps = 0;                // throughput in megabits/s
    uint64_t multifd_bytes = 0;     // part of ram_transferred sent over multifd channels
    uint64_t page_size = 0;
    unsigned cpu_throttle_percentage = 0;  // auto-converge's vCPU throttle now
    uint64_t postcopy_requests = 0;  // pages the destination faulted on and asked for
    uint64_t postcopy_bytes = 0;     // sent after the switch to post-copy
    std::string error_desc;
};

// Takes the value returned by execute("query-migrate"). Throws ProtocolError
// if a present field has the wrong type.
MigrationStats parse_migration_stats(const nlohmann::json& query_migrate);
// QEMU 7.2 says "completed" a moment before it has computed total-time and
// downtime (0 until then): re-asks, for at most `patience`, until they are in.
MigrationStats completed_figures(QmpClient& qmp, MigrationStats stats,
                                 std::chrono::milliseconds patience = std::chrono::milliseconds(1000));

}  // namespace rmig::qemu
