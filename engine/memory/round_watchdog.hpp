// Bounds every blocking step of a session. Channel send/recv have no timeout
// of their own (tcp only notices a vanished host after dead_peer_timeout), so
// a step is armed with a deadline and, if it overruns, the watchdog calls
// `on_expire` (which shuts the channels down): every blocked send/recv then
// throws LinkError and the caller reports the timeout by name.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace rmig::engine {

class RoundWatchdog {
public:
    explicit RoundWatchdog(std::function<void()> on_expire);
    ~RoundWatchdog();
    RoundWatchdog(const RoundWatchdog&) = delete;
    RoundWatchdog& operator=(const RoundWatchdog&) = delete;

    // (Re)starts the clock for one step; `what` names it in the timeout
    // message. Forgets an earlier expiry.
    void arm(std::chrono::milliseconds timeout, std::string what);
    void disarm();

    // Empty while nothing expired, else "<what> timed out after N ms".
    std::string expired() const;

private:
    void loop();

    std::function<void()> on_expire_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool armed_ = false;
    bool quit_ = false;
    std::chrono::steady_clock::time_point deadline_;
    std::chrono::milliseconds timeout_{0};
    std::string what_;
    std::string expired_;
    std::thread thread_;
};

}  // namespace rmig::engine
