// For the long-lived services (`rmig tunnel-send/-receive`): SIGINT and
// SIGTERM (systemd's stop), or the --timeout, request a stop that the service
// acts on between sessions and at once for the running ones, so it ends
// cleanly (sessions aborted with a reason, sockets removed) instead of dying.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <stop_token>
#include <thread>

namespace rmig::cli {

class StopOnSignal {
public:
    // Blocks SIGINT and SIGTERM in the calling thread, so threads started
    // after this inherit the mask and only the watcher takes them.
    // `lifetime` 0: no time limit.
    explicit StopOnSignal(std::chrono::seconds lifetime);
    ~StopOnSignal();
    StopOnSignal(const StopOnSignal&) = delete;
    StopOnSignal& operator=(const StopOnSignal&) = delete;

    std::stop_token token() const { return stop_.get_token(); }
    int signal() const { return signal_; }  // the signal that stopped it, 0 if none
    bool timed_out() const { return timed_out_; }

private:
    sigset_t set_{}, old_{};
    std::stop_source stop_;
    std::atomic<bool> done_{false};
    std::atomic<int> signal_{0};
    std::atomic<bool> timed_out_{false};
    std::thread thread_;
};

}  // namespace rmig::cli
