#include "lab/synth/cancel_on_signal.hpp"

#include <pthread.h>

#include <ctime>
#include <iostream>

namespace rmig::synth {

CancelOnSignal::CancelOnSignal(rmig_source* s) : s_(s) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    thread_ = std::thread([this] {
        const timespec tick{0, 100'000'000};  // re-check done_ every 100 ms
        while (!done_) {
            int sig = sigtimedwait(&set_, nullptr, &tick);
            if (sig <= 0) continue;
            signal_ = sig;
            std::cerr << "rmig-synth source: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                      << ": cancelling the migration\n";
            rmig_source_cancel(s_);
            return;
        }
    });
}

CancelOnSignal::~CancelOnSignal() {
    done_ = true;
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

}  // namespace rmig::synth
