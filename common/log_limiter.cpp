#include "common/log_limiter.hpp"

namespace rmig::log {

Limiter::Limiter(std::string what, int lines_per_window, std::chrono::milliseconds window)
    : what_(std::move(what)), per_window_(lines_per_window), window_(window) {}

bool Limiter::admit() {
    auto now = std::chrono::steady_clock::now();
    uint64_t held = 0;
    bool write;
    {
        std::lock_guard lk(mu_);
        if (now - window_start_ >= window_) {
            held = held_;
            held_ = 0;
            written_ = 0;
            window_start_ = now;
        }
        write = written_ < per_window_;
        if (write) {
            ++written_;
        } else {
            ++held_;
            ++suppressed_;
        }
    }
    if (held) log::warn("... and ", held, " more ", what_, " not shown (at most ", per_window_, " lines per ",
                        static_cast<double>(window_.count()) / 1000.0, " s)");
    return write;
}

uint64_t Limiter::suppressed() const {
    std::lock_guard lk(mu_);
    return suppressed_;
}

}  // namespace rmig::log
