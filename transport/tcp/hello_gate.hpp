// The tcp listener's front door: accepts connections and gathers their
// 64-byte hellos on one thread with poll(), all at once, each within a short
// deadline and within the admission bounds (transport/admission.hpp). A peer
// that connects and goes silent, or sends its hello a byte at a time, holds
// one slot until its deadline or until newer arrivals push it out; it never
// delays anyone else's hello (docs/security.md, "Listeners under a flood").
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/unique_fd.hpp"
#include "transport/admission.hpp"
#include "transport/channel.hpp"

namespace rmig::transport::tcp {

// A connection whose hello has arrived whole (not yet decoded or judged).
struct Greeted {
    UniqueFd fd;  // blocking again
    wire::HelloBytes hello;
    std::string peer;
};

class HelloGate {
public:
    // Takes over `listen_fd` (made non-blocking).
    HelloGate(UniqueFd listen_fd, const Options& opts);
    ~HelloGate();
    HelloGate(const HelloGate&) = delete;
    HelloGate& operator=(const HelloGate&) = delete;

    std::optional<Greeted> next(Millis timeout);

    struct Counters {
        uint64_t accepted = 0, greeted = 0;
        uint64_t dropped_bound = 0;    // pushed out by newer arrivals
        uint64_t dropped_timeout = 0;  // no whole hello within hello_timeout
        uint64_t dropped_closed = 0;   // closed before its hello was whole
        size_t pending = 0;            // now
    };
    Counters counters() const;

private:
    void run();

    UniqueFd listen_fd_;
    UniqueFd wake_;  // eventfd: stop
    Options opts_;
    mutable std::mutex mu_;
    std::condition_variable ready_cv_;
    // Whole hellos for the owner. Should it fall behind a flood, the oldest
    // of the address holding the most goes, as in the pending set.
    std::deque<std::pair<uint64_t, Greeted>> ready_;
    Admission ready_bounds_;
    Counters counters_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace rmig::transport::tcp
