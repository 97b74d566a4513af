// Two local QEMUs (a running source and a `-S -incoming defer` destination)
// and the ways to migrate between them: directly (QEMU to QEMU, the baseline)
// or through two real `rmig receive` / `rmig migrate` processes that only talk
// over TCP on loopback. verify() proves the guest arrived whole and runs.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/qemu_vm.hpp"
#include "qemu-plugin/migration_settings.hpp"

namespace rmig::lab {

struct RunResult {
    bool ok = false;
    int exit_code = -1;         // rmig migrate's (rmig runs only)
    int receive_exit_code = -1;
    std::string error;
    double total_ms = 0;        // QEMU's total-time
    double downtime_ms = 0;     // QEMU's downtime (source side, until its last byte is written)
    // Measured by the lab from its own monitors' QMP event timestamps, for
    // direct and rmig runs alike: source STOP -> destination RESUME (when the
    // destination was resumed), and source STOP -> destination loaded (its
    // MIGRATION "completed" event: where QEMU would resume with autostart).
    std::optional<double> blackout_ms;
    std::optional<double> stop_to_loaded_ms;
    std::optional<double> rmig_blackout_ms;  // what rmig migrate itself reported
    double wall_ms = 0;
    uint64_t ram_bytes = 0;
    uint64_t rounds = 0;
    // Post-copy (MigrationSettings::postcopy): the switch to QEMU's
    // completed, i.e. until the destination has every page. Direct runs
    // switch at once; rmig runs report theirs (--postcopy-after).
    std::optional<double> postcopy_phase_ms;
    nlohmann::json report;      // rmig migrate --json (rmig runs only)
};

struct RmigRun {
    qemu::MigrationSettings settings;
    bool show_progress = false;          // rmig's progress display on this terminal
    std::vector<std::string> extra_args; // more `rmig migrate` options
    std::vector<std::string> receive_extra_args;  // more `rmig receive` options
    // Fault injection: SIGKILL `rmig receive` (or `rmig migrate`) once this
    // many RAM bytes have moved.
    std::optional<uint64_t> kill_receiver_after;
    std::optional<uint64_t> kill_migrator_after;
    // After such a kill, start the killed rmig again this long after, with
    // the same arguments (`rmig receive` on the address it had): a broken
    // post-copy resumed by a new process (docs/postcopy.md). The result is
    // then the new process's.
    std::optional<std::chrono::milliseconds> restart_killed_after;
    // SIGSTOP the destination QEMU once this many RAM bytes have moved: a
    // destination whose monitor stops answering (as QEMU 7.2's can, wedged
    // after a broken multifd channel).
    std::optional<uint64_t> freeze_destination_after;
    int timeout_s = 120;
    // rmig resumes the destination guest (no --no-resume); verify() then
    // cannot compare memories (the guest runs on).
    bool resume = false;
    // Where `rmig receive` listens; "rdma:ADDR:0" carries the migration over RDMA.
    std::string listen_uri = "tcp:127.0.0.1:0";
    // Both rmig processes run with --insecure-plaintext instead of the pair's
    // random pre-shared key (authenticated + AES-256-GCM, the default).
    bool plaintext = false;
    // false: authenticated with the pre-shared key, data channels not
    // encrypted (--no-encrypt on both sides).
    bool encrypt = true;
    // What `rmig migrate` connects to; empty: the address `rmig receive` reports.
    // (dpdk memif: the client side of the listener's socket.)
    std::string connect_uri;
    // Network namespaces to run `rmig migrate` and `rmig receive` in (the
    // two ends of an emulated WAN, lab/wan/); empty: this one. QEMU stays
    // here: rmig reaches it over UNIX sockets.
    std::string source_netns, dest_netns;
    // Called with `rmig receive`'s address once it listens, before `rmig
    // migrate` starts (e.g. to flood the listener with strangers).
    std::function<void(const std::string& address)> before_migrate;
};

struct VerifyResult {
    bool ok = false;
    std::string detail;
};

class LocalPair {
public:
    // `dir` empty: a fresh directory under /tmp, removed at the end unless keep().
    explicit LocalPair(VmSpec spec = {}, std::string dir = "");
    ~LocalPair();

    QemuVm& source() { return *src_; }
    QemuVm& destination() { return *dst_; }
    // A fresh destination QEMU (after a failed migration killed the old one).
    void restart_destination();
    const std::string& dir() const { return dir_; }
    void keep() { keep_ = true; }
    // The options that give an rmig process this pair's random pre-shared key
    // (a file in dir(), made on first use): {"--psk-file", PATH}.
    std::vector<std::string> security_args();

    // QEMU to QEMU; over a UNIX socket, or TCP to `tcp_address` ("HOST:PORT",
    // where the destination QEMU listens: across an emulated WAN, with the
    // QEMUs in its namespaces, VmSpec).
    RunResult migrate_direct(const qemu::MigrationSettings& s, int timeout_s = 120,
                             const std::string& tcp_address = "");
    RunResult migrate_rmig(const RmigRun& run);

    // After a completed migration with the destination still paused: both
    // memories byte-identical and in the guest's pattern, then the destination
    // resumed and seen running, the source left stopped.
    VerifyResult verify();

private:
    RunResult wait_source(int timeout_s);
    void forget_events();
    void measure_blackout(RunResult& r);

    std::string dir_;
    bool keep_ = false;
    bool own_dir_ = false;
    VmSpec spec_;
    std::unique_ptr<QemuVm> src_, dst_;
    int generation_ = 0;
};

// The rmig binary the lab runs: $RMIG_BINARY, else the one built beside the lab.
std::string rmig_binary();

}  // namespace rmig::lab
