// The dpdk listener's front door, as tcp/hello_gate.hpp is tcp's: takes the
// connections SYNs open and gathers their 64-byte hellos on one thread, all
// at once, each within a short deadline and within the admission bounds
// (transport/admission.hpp). A flood of SYNs that never send a hello holds
// at most those bounds, and never delays a real source's hello.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "transport/channel.hpp"

namespace rmig::transport::dpdk {

class Connection;
class Endpoint;

struct Greeted {
    std::shared_ptr<Connection> conn;
    wire::HelloBytes hello;
};

class HelloGate {
public:
    HelloGate(std::shared_ptr<Endpoint> ep, const Options& opts);
    ~HelloGate();
    HelloGate(const HelloGate&) = delete;
    HelloGate& operator=(const HelloGate&) = delete;

    std::optional<Greeted> next(Millis timeout);

    struct Counters {
        uint64_t accepted = 0, greeted = 0, dropped_bound = 0, dropped_timeout = 0, dropped_closed = 0;
        size_t pending = 0;
    };
    Counters counters() const;

private:
    void run();

    std::shared_ptr<Endpoint> ep_;
    Options opts_;
    mutable std::mutex mu_;
    std::condition_variable ready_cv_;
    std::deque<Greeted> ready_;
    Counters counters_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace rmig::transport::dpdk
