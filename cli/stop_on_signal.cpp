#include "cli/stop_on_signal.hpp"

#include <ctime>

#include "common/log.hpp"

namespace rmig::cli {

StopOnSignal::StopOnSignal(std::chrono::seconds lifetime) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    auto deadline = lifetime.count() > 0 ? std::chrono::steady_clock::now() + lifetime
                                         : std::chrono::steady_clock::time_point::max();
    thread_ = std::thread([this, deadline, lifetime] {
        const timespec step{0, 200'000'000};
        while (!done_) {
            int sig = sigtimedwait(&set_, nullptr, &step);
            if (sig > 0) {
                signal_ = sig;
                log::info("stopping (", sig == SIGINT ? "SIGINT" : "SIGTERM", ")");
                stop_.request_stop();
                return;
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                timed_out_ = true;
                log::info("stopping: ran for ", lifetime.count(), " s (--timeout)");
                stop_.request_stop();
                return;
            }
        }
    });
}

StopOnSignal::~StopOnSignal() {
    done_ = true;
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

}  // namespace rmig::cli
