// The source's end of the control channel. One reader thread takes all that
// the destination sends -- answers to our requests, its delivery reports, an
// abort -- so that an abort is acted on at once even while a data channel is
// blocked, and rmig always knows how much the destination has taken in.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "transport/channel.hpp"

namespace rmig::qemu {

// The destination answered a request with {"ok": false}: an answer, not a
// lost link -- it did not do what was asked (for 'finish': it did not resume).
class DestinationRefused : public Error {
public:
    using Error::Error;
};

class ControlLink {
public:
    // `stall_timeout`: a request gets no message at all from the destination
    // for this long -> the link is taken for stalled and shut down.
    ControlLink(std::unique_ptr<transport::Channel> channel, std::chrono::milliseconds stall_timeout);
    ~ControlLink();
    ControlLink(const ControlLink&) = delete;
    ControlLink& operator=(const ControlLink&) = delete;

    // Sends `msg` and returns the answer ({"op":"working"} notes keep it
    // waiting). Throws DestinationRefused, or Error when the link fails, the
    // destination aborts, or it stays silent for the stall timeout.
    nlohmann::json ask(const nlohmann::json& msg);
    // Best effort: tells the destination why we give up.
    void send_abort(const std::string& why);
    void shutdown();

    // Runs (on the reader thread, once) when the destination aborts.
    void on_abort(std::function<void(const std::string&)> fn);
    // Called (on the reader's thread) when the channel is lost for any reason,
    // an abort included, after on_abort's function.
    void on_lost(std::function<void(const std::string&)> fn);
    // The destination's own reason, once it aborted.
    std::optional<std::string> peer_abort() const;

    // The destination's latest delivery report: bytes written into its QEMU.
    struct Delivery {
        uint64_t bytes = 0;
        std::chrono::steady_clock::time_point at{};
    };
    Delivery delivered() const;

private:
    // Sets `slot` to `fn` and, if `seen` already happened, calls it now
    // (outside the lock, so it may call back into this link).
    void subscribe(std::function<void(const std::string&)>& slot, const std::optional<std::string>& seen,
                   std::function<void(const std::string&)> fn);
    void read_loop();

    std::unique_ptr<transport::Channel> channel_;
    std::chrono::milliseconds stall_timeout_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<nlohmann::json> answers_;
    uint64_t heard_ = 0;                  // messages of any kind
    std::optional<std::string> failure_;  // the reader stopped: why
    std::optional<std::string> peer_abort_;
    std::function<void(const std::string&)> on_abort_, on_lost_;
    Delivery delivered_;
    std::mutex send_mutex_;
    std::jthread reader_;
};

}  // namespace rmig::qemu
