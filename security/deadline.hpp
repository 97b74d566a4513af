// Bounds a blocking exchange on a channel: if the guard is still alive after
// `timeout`, it shuts the channel down, so a blocked send/recv throws and the
// caller reports the timeout. Used around the TLS handshake and token exchange.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "transport/channel.hpp"

namespace rmig::security {

class ChannelDeadline {
public:
    ChannelDeadline(transport::Channel& ch, transport::Millis timeout)
        : thread_([this, &ch, timeout] {
              std::unique_lock lk(mu_);
              if (!cv_.wait_for(lk, timeout, [this] { return done_; })) {
                  expired_ = true;
                  ch.shutdown();
              }
          }) {}
    ~ChannelDeadline() {
        {
            std::lock_guard lk(mu_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    ChannelDeadline(const ChannelDeadline&) = delete;
    ChannelDeadline& operator=(const ChannelDeadline&) = delete;

    bool expired() {
        std::lock_guard lk(mu_);
        return expired_;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    bool expired_ = false;
    std::thread thread_;  // last: starts after the members above exist
};

}  // namespace rmig::security
