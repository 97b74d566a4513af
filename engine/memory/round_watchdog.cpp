#include "engine/memory/round_watchdog.hpp"

#include "common/error.hpp"

namespace rmig::engine {

RoundWatchdog::RoundWatchdog(std::function<void()> on_expire)
    : on_expire_(std::move(on_expire)), thread_([this] { loop(); }) {}

RoundWatchdog::~RoundWatchdog() {
    {
        std::lock_guard lock(mu_);
        quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void RoundWatchdog::arm(std::chrono::milliseconds timeout, std::string what) {
    {
        std::lock_guard lock(mu_);
        armed_ = true;
        expired_.clear();  // a step that timed out earlier and was recovered from is not this one's cause
        timeout_ = timeout;
        deadline_ = std::chrono::steady_clock::now() + timeout;
        what_ = std::move(what);
    }
    cv_.notify_all();
}

void RoundWatchdog::disarm() {
    std::lock_guard lock(mu_);
    armed_ = false;
}

std::string RoundWatchdog::expired() const {
    std::lock_guard lock(mu_);
    return expired_;
}

void RoundWatchdog::loop() {
    std::unique_lock lock(mu_);
    while (!quit_) {
        if (!armed_) {
            cv_.wait(lock);
            continue;
        }
        if (cv_.wait_until(lock, deadline_) == std::cv_status::timeout && armed_ && !quit_ &&
            std::chrono::steady_clock::now() >= deadline_) {
            armed_ = false;
            expired_ = cat(what_, " timed out after ", timeout_.count(), " ms");
            lock.unlock();
            on_expire_();  // outside the lock: it may block on channel shutdown
            lock.lock();
        }
    }
}

}  // namespace rmig::engine
