// Keeps a flood of like events (hundreds of strangers' connections dropped a
// second) from flooding the log: the first few lines of each window are
// written, the rest counted and summed up in one line when the next window
// opens. Thread safe.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "common/log.hpp"

namespace rmig::log {

class Limiter {
public:
    // `what` names the events in the summary line ("dropped connections").
    Limiter(std::string what, int lines_per_window = 5,
            std::chrono::milliseconds window = std::chrono::seconds(10));

    template <class... A> void warn(const A&... a) {
        if (admit()) log::warn(a...);
    }
    uint64_t suppressed() const;  // in all, since construction

private:
    bool admit();

    std::string what_;
    int per_window_;
    std::chrono::milliseconds window_;
    mutable std::mutex mu_;
    std::chrono::steady_clock::time_point window_start_{};
    int written_ = 0;
    uint64_t held_ = 0, suppressed_ = 0;
};

}  // namespace rmig::log
