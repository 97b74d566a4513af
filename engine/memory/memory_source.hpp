// Memory mode, source side: pre-copy rounds of guest memory pages over
// `workers` data channels, switchover with a device-state blob, and the
// destination's confirmation before anything may be discarded.
//
// Flow:
//   connect control + data channels -> "layout" (destination refuses a
//   mismatch) -> start dirty tracking -> round 0 sends every page -> each
//   round: workers send their shard as page batches, then a barrier on their
//   own channel; the source then asks "round_end" and waits for the
//   destination's "round_done" (all barriers arrived, all pages placed), so a
//   page of round r+1 never lands before one of round r -> collect the next
//   dirty set, ask the ConvergencePolicy -> on switchover pause() the caller,
//   send the final dirty set as the last round, send the device state, wait
//   for "confirm".
// The engine only ever reads source memory; on any failure it stops tracking,
// sends abort, calls on_failure_resume() if it had paused the caller, and
// returns a reason. A stop requested on `stop` (any thread) is such a failure,
// "migration cancelled by the caller", until the last piece of the device
// state goes out; after that the destination may already hold the guest, so
// the migration finishes (docs/memory-mode.md, "Cancelling from the source").
//
// Messages (JSON in CONTROL frames, wire/control.hpp; replies
// carry "ok", refusals "ok": false + "error"):
//   control  src->dst {"op":"layout","layout":{"page_size":N,"regions":[{"name","size","gpa"}]}}
//            dst->src {"ok":true}
//   data k   src->dst DATA frames (page batches, page_batch.hpp), then
//            CONTROL {"op":"barrier","round":r,"pages":pages sent on this channel in r}
//   control  src->dst {"op":"round_end","round":r,"pages":total}
//            dst->src {"ok":true,"op":"round_done","round":r}   (all barriers in, all placed)
//   control  src->dst {"op":"device_state","bytes":N} then one DATA frame of N bytes
//            dst->src {"ok":true,"op":"confirm"}
//   then END on every channel; on failure either side sends ABORT (UTF-8 reason).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "engine/convergence/convergence_policy.hpp"
#include "engine/dirty/dirty_source.hpp"
#include "engine/memory/memory_layout.hpp"
#include "engine/pages/compressor.hpp"
#include "transport/channel.hpp"

namespace rmig::security {
class Context;  // security/context.hpp
}

namespace rmig::engine {

enum class DirtyLog {
    uffd_wp,  // userfaultfd write-protect over each region (writes through this process)
    caller,   // caller-fed sources, one per region (e.g. a BitmapSource fed from KVM's log)
};

struct MemorySourceConfig {
    std::vector<Region> regions;
    std::string dest_uri;          // "tcp:HOST:PORT"
    unsigned workers = 2;          // worker threads = data channels
    Codec codec = Codec::none;
    int codec_level = 0;
    size_t page_size = 4096;
    size_t batch_budget = kDefaultBatchBudget;  // bytes per DATA frame (at most)
    // Page batches a worker's send stage may hold while the worker builds the
    // next (batch_sender.hpp); 0: the worker sends each batch itself.
    unsigned pipeline_depth = 2;
    ConvergenceConfig convergence;              // its page_size is set to page_size
    DirtyLog dirty_log = DirtyLog::uffd_wp;
    // dirty_log == caller: sources[i] tracks regions[i]; not owned. The engine
    // calls start()/collect()/stop() on them from its round thread.
    std::vector<DirtySource*> caller_sources;
    // Longest any one step may block (a round, a reply, the confirmation).
    std::chrono::milliseconds step_timeout{60000};
    transport::Options transport;
    // Authentication / encryption (security::connect/listen); unset: plaintext.
    std::shared_ptr<security::Context> security;
    // Over a transport with one-sided writes (rdma) and without a codec,
    // non-zero pages go as RDMA WRITEs straight from the regions into the
    // destination's memory (docs/memory-mode.md); false forces page batches.
    bool one_sided = true;
    // NUMA (engine/memory/worker_placement.hpp): workers pinned near `nic`
    // (PCI address or device name; empty: the channels' device where the
    // transport knows it (rdma), else near the regions' memory), staging
    // buffers on their node; applied only on machines with several nodes.
    bool numa = true;
    std::string nic;

    // Post-copy (docs/memory-mode.md, "Post-copy"): at the switch the guest
    // is paused as for a switchover, but only its device state and the list
    // of pages not sent yet go to the destination, which starts the guest at
    // once; those pages follow, the ones its guest faults on first. Off by
    // default.
    struct Postcopy {
        bool enabled = false;
        // Switch once this many pre-copy rounds were sent (1: after the full
        // first round). 0: when the convergence policy finds pre-copy will not
        // fit the downtime budget (it would throttle or give up): post-copy
        // then replaces the throttle, which is never called.
        unsigned after_rounds = 0;
        // Once the guest runs on the destination, a lost link is retried
        // this long: new channels to the same session, the destination's
        // list of the pages it still misses, and the push (or its pull)
        // goes on from there. 0: the first lost link fails the migration.
        std::chrono::milliseconds recover{120000};
        // Where every data channel has one-sided reads (rdma, not encrypted),
        // offer the destination to read the pending pages itself, many reads
        // in flight, instead of the push (docs/memory-mode.md, "Post-copy").
        // false: always push (for comparison).
        bool pull = true;
    } postcopy;

    // Auto-converge: slow the guest to `percent` (optional).
    std::function<void(unsigned percent)> throttle;
    // After each pre-copy round: the policy's decision (converging or not,
    // the throttle, the forecast time to switchover). Optional; round thread.
    std::function<void(const Decision&)> on_decision;
    // Switchover: stop every writer to the regions (vCPUs) and return the
    // device state; nothing may write the regions after it returns. Required.
    std::function<std::vector<std::byte>()> pause;
    // Called after a failure if pause() had been called: resume the guest.
    std::function<void()> on_failure_resume;

    // Cancel from any thread: workers stop between pages, the destination
    // gets an abort ("migration cancelled by the caller"), the guest is
    // resumed if it was paused, and migrate_memory returns with `cancelled`.
    std::stop_token stop;
    // After a stop, how long a step already under way (a reply awaited, a
    // callback running) may take before every channel is shut down.
    std::chrono::milliseconds cancel_grace{2000};
};

// Where the downtime went, in order (milliseconds; they add up to downtime_ms).
struct SwitchoverTimes {
    double pause_ms = 0;         // the caller's pause(): vCPUs stopped, device state produced
    double collect_ms = 0;       // the last dirty set collected
    uint64_t final_pages = 0;    // pages in the final round
    double final_round_ms = 0;   // the workers sent them (and their barriers)
    double device_state_ms = 0;  // the device state handed to the control channel
    double placed_ms = 0;        // until the destination had placed the final round
    double confirm_ms = 0;       // until it confirmed, device state received
};

// The post-copy phase, as the source saw it.
struct SourcePostcopy {
    bool switched = false;
    std::string reason;         // why it switched ("after 2 rounds", the policy's reason)
    uint64_t pending_pages = 0; // pages the destination did not have at the switch
    uint64_t served_pages = 0;  // pages the destination asked for and the source sent first
    bool rdma_reads = false;    // faulted pages were read one-sided from the source (no requests)
    double phase_s = 0;         // guest started on the destination -> it had every page
    uint64_t pushed_bytes = 0;  // page batch bytes of the background push
    unsigned resumed = 0;       // times the push went on over new channels after a lost link
    std::string broke;          // what broke first (empty when nothing did)
    bool pulled = false;        // the destination read the pending pages itself (no push)
};

struct MemorySourceResult {
    bool ok = false;
    std::string error;          // why it failed (empty on success)
    std::string session;        // hex session id
    unsigned rounds = 0;        // rounds sent, the final one included
    uint64_t pages_sent = 0;    // every page entry sent, zero markers included
    uint64_t zero_pages = 0;
    uint64_t compressed_pages = 0;
    uint64_t bytes_sent = 0;    // page batch bytes
    double seconds = 0;         // whole migration
    double downtime_ms = 0;     // pause() called -> confirm received
    bool paused = false;        // pause() was called
    bool cancelled = false;     // ended by a stop on MemorySourceConfig::stop
    std::string last_decision;  // the policy's last reason
    // How pages travelled: "one-sided rdma writes, zero pages as markers" or
    // "page batches" (+ why, when one-sided writes were possible but not used).
    std::string page_path;
    uint64_t one_sided_pages = 0;  // pages written one-sided (counted in pages_sent and bytes_sent too)
    std::string placement;         // where the workers ran and why (WorkerPlacement::summary)
    SwitchoverTimes switchover;    // set once pause() was called
    // Set when it switched to post-copy: downtime_ms then ends when the
    // destination started the guest, and `switchover` has no final round.
    SourcePostcopy postcopy;
};

MemorySourceResult migrate_memory(const MemorySourceConfig& config);

}  // namespace rmig::engine
