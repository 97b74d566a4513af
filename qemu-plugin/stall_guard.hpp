// No-progress watchdogs for channel mode. A stalled link (sockets open, no
// bytes moving) blocks a send or recv forever; these run an action (shut the
// channel down, abort the relay) from their own thread when nothing has moved
// for `timeout`, so the blocked call fails and the migration ends cleanly.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace rmig::qemu {

class StallGuard {
public:
    // Polls `progress` every `timeout`/8 (at most 200 ms); once its value has
    // not changed for `timeout`, calls `on_stall` once. `progress` and
    // `on_stall` run on the guard's thread.
    StallGuard(std::chrono::milliseconds timeout, std::function<uint64_t()> progress,
               std::function<void()> on_stall)
        : timeout_(timeout), progress_(std::move(progress)), on_stall_(std::move(on_stall)) {
        thread_ = std::jthread([this] { watch(); });
    }
    ~StallGuard() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_ = {};
    }
    StallGuard(const StallGuard&) = delete;
    StallGuard& operator=(const StallGuard&) = delete;

    // A longer patience from now on (e.g. once a reconnect grace is known:
    // an outage within it is no stall).
    void extend_to(std::chrono::milliseconds timeout) {
        std::lock_guard lock(mutex_);
        timeout_ = std::max(timeout_, timeout);
    }

    bool fired() const {
        std::lock_guard lock(mutex_);
        return fired_;
    }

private:
    void watch() {
        using Clock = std::chrono::steady_clock;
        auto step = std::min(std::chrono::milliseconds(200),
                             std::max(std::chrono::milliseconds(10), timeout_ / 8));
        uint64_t last = progress_();
        auto since = Clock::now();
        std::unique_lock lock(mutex_);
        while (!cv_.wait_for(lock, step, [this] { return done_; })) {
            lock.unlock();
            uint64_t now_value = progress_();
            auto now = Clock::now();
            if (now_value != last) {
                last = now_value;
                since = now;
            }
            lock.lock();
            bool stalled = now_value == last && now - since >= timeout_;
            if (stalled) {
                fired_ = true;
                lock.unlock();
                on_stall_();
                return;
            }
        }
    }

    std::chrono::milliseconds timeout_;
    std::function<uint64_t()> progress_;
    std::function<void()> on_stall_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    bool fired_ = false;
    std::jthread thread_;
};

}  // namespace rmig::qemu
