// SIGINT / SIGTERM during `rmig-synth source` cancel the migration through
// rmig_source_cancel() (from a thread of its own, as a VMM's control thread
// would), instead of killing the process mid-round: the destination gets the
// abort, the writers resume if they were paused, the report says "cancelled".
#pragma once

#include <signal.h>

#include <atomic>
#include <thread>

#include "engine/capi/rmig.h"

namespace rmig::synth {

class CancelOnSignal {
public:
    // Blocks SIGINT and SIGTERM in the calling thread, so threads started
    // after this (writers, the engine's) inherit the mask and only the
    // watcher takes them.
    explicit CancelOnSignal(rmig_source* s);
    ~CancelOnSignal();
    CancelOnSignal(const CancelOnSignal&) = delete;
    CancelOnSignal& operator=(const CancelOnSignal&) = delete;

    int signal() const { return signal_; }  // the signal that cancelled, 0 if none

private:
    rmig_source* s_;
    sigset_t set_{}, old_{};
    std::atomic<bool> done_{false};
    std::atomic<int> signal_{0};
    std::thread thread_;
};

}  // namespace rmig::synth
