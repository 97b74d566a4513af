// The source's end of the control channel. One reader thread takes all that
// the destination sends -- answers to our requests, its delivery reports, an
// abort -- so that an abort is acted on at once even while a data channel is
// blocked, and rmig always knows how much the destination has taken in.
//
// With a reconnect grace (resume_with), a lost connection is not a lost link:
// the reader reopens it (a new control channel of the same session,
// authenticated by the session's token) and sends the request being asked
// again. Requests carry a sequence number, so the destination answers a
// repeated one from its cache instead of doing it twice (docs/flows.md).
#pragma once

#include <atomic>
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
#include <vector>

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

    // Opens a new control channel of the session (throws on failure).
    using Reopen = std::function<std::unique_ptr<transport::Channel>()>;
    // From now on a lost connection is reopened, tried every 250 ms for up to
    // `grace`; only then is the link lost. A destination's abort is final.
    void resume_with(Reopen reopen, std::chrono::milliseconds grace);
    uint32_t reopened() const;  // connections replaced so far
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
    void read_messages();
    // The connection broke with `why`: reopens it within the grace; false if
    // not resumable, shutting down, or the grace ran out.
    bool reopen(const std::string& why);
    void send(const nlohmann::json& msg);

    // Every connection this link used, the current one last: a lost one is
    // kept (shut down) because the session's secret, which the reopened
    // channels and new data channels authenticate with, lives as long as the
    // first control channel does.
    std::vector<std::unique_ptr<transport::Channel>> channels_;  // guarded by mutex_
    std::atomic<transport::Channel*> channel_;
    std::chrono::milliseconds stall_timeout_;
    Reopen reopen_;                     // guarded by mutex_
    std::chrono::milliseconds grace_{0};
    std::atomic<bool> closing_{false}, reopening_{false};
    uint32_t reopened_ = 0;
    uint64_t seq_ = 0;                       // the last request's number
    std::optional<nlohmann::json> pending_;  // the request waiting for its answer
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
