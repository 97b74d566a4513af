// The dpdk listener's front door, as tcp/hello_gate.hpp is tcp's: takes the
// connections SYNs open and gathers their 64-byte hellos on one thread, all
// at once, each within a short deadline and within the admission bounds
// (transport/admission.hpp). A flood of SYNs that never send a hello holds
// at most those bounds, and never delays a real source's hello.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "transport/channel.hpp"
#include "transport/ready_queue.hpp"

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

private:
    void run();
    void close(Connection& c, const std::string& why);

    std::shared_ptr<Endpoint> ep_;
    Options opts_;
    ReadyQueue<Greeted> ready_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace rmig::transport::dpdk
