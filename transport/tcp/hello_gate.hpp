// The tcp listener's front door: accepts connections and gathers their
// 64-byte hellos on one thread with poll(), all at once, each within a short
// deadline and within the admission bounds (transport/admission.hpp). A peer
// that connects and goes silent, or sends its hello a byte at a time, holds
// one slot until its deadline or until newer arrivals push it out; it never
// delays anyone else's hello (docs/security.md, "Listeners under a flood").
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "common/unique_fd.hpp"
#include "transport/channel.hpp"
#include "transport/ready_queue.hpp"

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

private:
    void run();

    UniqueFd listen_fd_;
    UniqueFd wake_;  // eventfd: stop
    Options opts_;
    ReadyQueue<Greeted> ready_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace rmig::transport::tcp
