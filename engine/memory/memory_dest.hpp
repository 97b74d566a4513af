// Memory mode, destination side: accepts one session (control channel plus
// its data channels), checks the source's region layout against ours, places
// every page straight into destination memory from one receiver thread per
// data channel, answers each round barrier once all its pages are placed,
// receives the device state and confirms. See memory_source.hpp for the flow.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include "engine/memory/memory_layout.hpp"
#include "transport/channel.hpp"

namespace rmig::security {
class Context;  // security/context.hpp
}

namespace rmig::engine {

struct MemoryDestConfig {
    std::vector<Region> regions;  // same names and sizes, in the same order, as the source's
    std::string listen_uri;       // "tcp:0.0.0.0:7070"; port 0 picks one (see on_listening)
    size_t page_size = 4096;
    unsigned workers = 0;         // data channels expected; 0 = whatever the source announces (1..64)
    std::chrono::milliseconds timeout{300000};       // whole session, and the wait for a source
    std::chrono::milliseconds step_timeout{60000};   // once a source came: its channels, a round, a message
    transport::Options transport;
    // Authentication / encryption (security::connect/listen); unset: plaintext.
    std::shared_ptr<security::Context> security;
    // NUMA for the receiver threads, as MemorySourceConfig::numa / nic.
    bool numa = true;
    std::string nic;
    std::function<void(const std::string& address)> on_listening;
    std::function<void(uint64_t round, uint64_t pages)> on_round_done;  // after replying round_done
    // Post-copy (docs/memory-mode.md): the source switched and the guest is
    // to run here now, with this device state. Pages not here yet are
    // missing; a guest thread touching one blocks until it is placed. Without
    // this callback the destination refuses post-copy. Called on a thread of
    // its own: loading devices may touch missing pages, which are served
    // meanwhile.
    std::function<void(std::span<const std::byte> device_state)> on_postcopy_start;
    // Post-copy broke after on_postcopy_start: neither host holds the whole
    // guest. Called before the destination stops catching faults (a missing
    // page reads as zeros after that): stop the guest's threads here.
    std::function<void(const std::string& why)> on_postcopy_failed;
    // Post-copy, once the guest runs here: a lost link (or a push that
    // stalled for a step) is not yet a failure. The destination keeps its
    // guest running (its faults wait) and listens on for the same source's
    // session this long; the source opens new channels, learns which pages
    // are still missing, and the push goes on (docs/postcopy.md, "Memory
    // mode: recovery"). 0: fail at once.
    std::chrono::milliseconds postcopy_recover{120000};
    // Requesting a stop ends the session at once (channels shut down), as a
    // failure; the source sees its peer vanish.
    std::stop_token stop;
};

// The post-copy phase, as the destination saw it.
struct DestPostcopy {
    bool switched = false;
    uint64_t pending_pages = 0;  // pages missing at the switch
    uint64_t faults = 0;         // distinct missing pages the guest touched before they were pushed
    uint64_t fetched_pages = 0;  // of those, fetched on demand (request or rdma read) rather than pushed
    bool rdma_reads = false;     // faulted pages were read one-sided from the source's memory
    bool pulled = false;         // the pending pages were read one-sided too, instead of pushed
    uint64_t pulled_pages = 0;   // placed by that pull (the rest by faults)
    double phase_s = 0;          // guest started -> every page placed
    // Pending pages are dropped from memory before the guest starts: most
    // while the source's guest still runs (the set known before its pause),
    // the rest in the blackout.
    uint64_t dropped_early = 0, dropped_in_blackout = 0;
    double drop_early_ms = 0, drop_in_blackout_ms = 0;
    // Fault to page placed, in microseconds (over `faults`; 0 without faults).
    double fault_p50_us = 0, fault_p99_us = 0, fault_max_us = 0;
    unsigned resumed = 0;        // times the phase went on over new channels after a lost link
    std::string broke;           // what broke first (empty when nothing did)
};

struct MemoryDestResult {
    bool ok = false;
    std::string error;
    std::string session;
    unsigned rounds = 0;
    uint64_t pages_placed = 0;
    std::vector<std::byte> device_state;  // the blob pause() returned on the source
    bool one_sided = false;               // regions were exposed for the source's rdma writes
    std::string placement;                // where the receivers ran and why
    DestPostcopy postcopy;
};

MemoryDestResult receive_memory(const MemoryDestConfig& config);

}  // namespace rmig::engine
