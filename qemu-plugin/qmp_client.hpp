// Blocking client for QEMU's QMP monitor on a UNIX socket.
//
// QMP sends one JSON object per line: a greeting, then replies ({"return"} or
// {"error"}, carrying the "id" we sent) interleaved with asynchronous events
// ({"event"}). We keep one command in flight, match its reply by id (so a late
// reply to a command that timed out is recognised and dropped), and queue the
// events that arrive meanwhile so callers can ask for them afterwards: QEMU
// often emits e.g. STOP before the reply to "stop".
//
// Thread-safety: none. Use one client per thread, or guard it with a mutex.
// Note that a QMP socket serves one client at a time: a second connection is
// accepted by the kernel but gets no greeting until the first one closes (the
// constructor then fails with LinkError after its timeout). Give QEMU another
// -qmp socket if two threads need a monitor concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace rmig::qemu {

// QEMU answered a command with {"error": {"class": ..., "desc": ...}}.
// The connection stays usable.
// No reply within the timeout (QEMU busy or wedged; the client stays usable).
class QmpTimeout : public rmig::LinkError {
public:
    using LinkError::LinkError;
};

class QmpError : public rmig::Error {
public:
    QmpError(const std::string& socket_path, const std::string& command,
             const std::string& error_class, const std::string& desc);
    const std::string& command() const { return command_; }
    const std::string& error_class() const { return class_; }  // e.g. "CommandNotFound"
    const std::string& desc() const { return desc_; }

private:
    std::string command_, class_, desc_;
};

class QmpClient {
public:
    static constexpr size_t kMaxQueuedEvents = 256;  // older events are dropped first

    // Connects (retrying while QEMU has not created the socket yet), reads the
    // greeting and negotiates capabilities, all within `timeout`.
    // Throws Error (cannot connect) or LinkError (no greeting / connection lost).
    explicit QmpClient(std::string socket_path,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));
    QmpClient(QmpClient&&) = default;
    QmpClient& operator=(QmpClient&&) = default;

    // Runs `cmd` and returns its "return" value. `args` null or {} sends no
    // "arguments". Throws QmpError if QEMU rejects it, LinkError if the
    // connection is lost or no reply comes within `timeout` (after a timeout
    // the client stays usable; the late reply is discarded).
    nlohmann::json execute(const std::string& cmd, const nlohmann::json& args = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

    // Runs an HMP command via human-monitor-command and returns its output
    // with "\r\n" turned into "\n". HMP reports its own errors as text.
    std::string human(const std::string& hmp_command,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

    // All queued events, oldest first; empties the queue.
    std::vector<nlohmann::json> take_events();

    // Returns (and removes) the oldest queued event called `name`, or reads
    // from QEMU until one arrives; nullopt after `timeout`. Events that
    // arrived during earlier calls count, so execute("stop") followed by
    // wait_event("STOP", ...) works. Other events stay queued.
    std::optional<nlohmann::json> wait_event(const std::string& name,
                                             std::chrono::milliseconds timeout);

    const std::string& socket_path() const { return path_; }
    const nlohmann::json& greeting() const { return greeting_; }
    const std::string& qemu_version() const { return version_; }  // "7.2.22", from the greeting
    uint64_t dropped_events() const { return dropped_events_; }
    // The QEMU process at the other end of the socket (SO_PEERCRED), 0 if
    // unknown: how rmig stops a QEMU whose monitor no longer answers.
    int peer_pid() const;

private:
    using Clock = std::chrono::steady_clock;

    // One bounded wait. After the deadline the socket is read at most once
    // more, so a zero timeout still sees what QEMU already sent, yet a stream
    // of events cannot keep a wait going forever.
    struct Wait {
        Clock::time_point deadline;
        bool read_after_deadline = false;
    };
    // Next complete message, or nullopt when the wait is over first.
    std::optional<nlohmann::json> read_message(Wait& wait, const std::string& what);
    void queue_event(nlohmann::json event);
    [[noreturn]] void lost(const std::string& why);
    void check_alive() const;

    std::string path_;
    UniqueFd fd_;
    std::string rx_;  // bytes received but not yet consumed as a whole line
    nlohmann::json greeting_;
    std::string version_;
    std::deque<nlohmann::json> events_;
    uint64_t dropped_events_ = 0;
    uint64_t next_id_ = 1;
    std::string lost_reason_;  // non-empty once the connection is gone
};

// For the rmig commands: fails at once, saying how to start QEMU, when
// nothing listens at `path` (QmpClient itself waits for a QEMU still starting).
std::unique_ptr<QmpClient> connect_qmp(const std::string& path, const std::string& which);

}  // namespace rmig::qemu
