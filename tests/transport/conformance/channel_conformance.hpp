// One conformance suite for every Channel backend (transport/channel.hpp), in
// the spirit of UCX's UCT_INSTANTIATE_TEST_CASE: the cases live once in
// channel_conformance.cpp as TEST_Ps over a ChannelPairFactory, and each
// backend adds itself with one factory and one line:
//
//   INSTANTIATE_CHANNEL_CONFORMANCE(tcp, tcp_factory());
//
// A factory opens a Link: a listener plus what a connector needs to reach it.
// The suite opens its channels over that link itself (so it can look at the
// hello, refuse, open several), and checks what every backend must do alike.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <ostream>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "transport/channel.hpp"

namespace rmig::security {
class Context;  // security/context.hpp
}

namespace rmig::test::conformance {

// Two hosts as a backend sees them: one listening, one connecting.
struct Link {
    // Anything the backend needs until the very end (dpdk: the memif socket's
    // directory); declared first, so destroyed last.
    std::shared_ptr<void> resources;
    std::unique_ptr<transport::Listener> listener;
    std::string connect_uri;  // what the connecting side dials (tcp: the listener's address)
    transport::Options connect_opts;
    // Secured backends: the credentials both ends use (security/ wraps the
    // plain transport from above); null for a plain backend.
    std::shared_ptr<const security::Context> security;
    // The session data channels belong to (secured: the one authenticated below).
    wire::SessionId session = wire::random_session_id();
    // Whatever the backend needs open while data channels run (secured: the
    // authenticated control channel, both ends). Dropped before the listener.
    std::vector<std::unique_ptr<transport::Channel>> keep;
};

struct ChannelPairFactory {
    std::string name;  // the instantiation's suffix in test names: tcp, secured_tcp, dpdk_memif, rdma
    std::function<std::unique_ptr<Link>()> make;
    // Empty where this machine can run the backend; else why not (the case skips).
    std::function<std::string()> unavailable = [] { return std::string(); };
    // What the backend is expected to have (asserted both ways, never assumed):
    bool one_sided = false;     // one_sided() non-null
    std::string no_one_sided = {};  // why it has none (the skip reason of one-sided cases)
    bool fills_in_place = false;
    bool recv_into_is_direct = false;  // recv_into() reads straight from the transport
};

// gtest names the parameter of a failed case by this, not by a byte dump.
inline void PrintTo(const ChannelPairFactory& f, std::ostream* os) { *os << f.name; }

// Both ends of one channel: `client` connected, `server` accepted.
struct Pair {
    std::unique_ptr<transport::Channel> client, server;
};

// A task on a thread of its own whose result is awaited with a deadline. If
// the test leaves early (a failed ASSERT, a timeout) the destructor shuts the
// listed channels down first, so a task blocked in send/recv ends instead of
// hanging the test; one that still does not end aborts the binary with a
// message (better than ctest's timeout minutes later, with none).
template <class T> class Task {
public:
    Task(std::function<T()> fn, std::vector<transport::Channel*> unblock)
        : unblock_(std::move(unblock)), f_(std::async(std::launch::async, std::move(fn))) {}
    Task(Task&&) = default;
    ~Task() {
        if (f_.valid() && f_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) release();
    }
    // The task's result (or its exception) if it ends within `limit`; else
    // the channels are shut down and this throws, failing the test.
    T get(std::chrono::milliseconds limit, const std::string& what) {
        if (f_.wait_for(limit) != std::future_status::ready) {
            release();
            try {
                f_.get();
            } catch (...) {
            }
            throw std::runtime_error(what + ": not done within " + std::to_string(limit.count()) + " ms");
        }
        return f_.get();
    }
    bool ready() const { return f_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

private:
    void release();
    std::vector<transport::Channel*> unblock_;
    std::future<T> f_;
};

void abort_still_blocked();  // channel_conformance.cpp

template <class T> void Task<T>::release() {
    for (auto* c : unblock_)
        if (c) c->shutdown();
    if (f_.wait_for(std::chrono::seconds(15)) != std::future_status::ready) abort_still_blocked();
}

class ChannelConformance : public ::testing::TestWithParam<ChannelPairFactory> {
protected:
    void SetUp() override;
    void TearDown() override;

    const ChannelPairFactory& factory() const { return GetParam(); }
    Link& link() { return *link_; }
    wire::Hello hello(uint32_t id, uint32_t count = 4) const;
    // Connects channel `id` and accepts it (reply: the hello with the
    // destination role); both ends, or the test fails.
    Pair open(uint32_t id, uint32_t count = 4);
    std::unique_ptr<transport::Channel> connect(const wire::Hello& h);

private:
    std::unique_ptr<Link> link_;
};

// Deterministic content: byte i of the payload seeded `seed`.
inline std::byte pattern(uint64_t seed, size_t i) {
    return std::byte(static_cast<unsigned char>(i * 131 + seed * 17 + (i >> 9) + (seed >> 8)));
}
void fill_pattern(std::span<std::byte> dst, uint64_t seed, size_t offset = 0);
// Where `got` first differs from pattern(seed) (SIZE_MAX: nowhere).
size_t first_mismatch(std::span<const std::byte> got, uint64_t seed, size_t offset = 0);

}  // namespace rmig::test::conformance

// One line per backend, inside namespace rmig::test::conformance (gtest
// pastes the suite name, so it cannot be qualified); `factory` is a
// ChannelPairFactory. Test names: prefix/ChannelConformance.Case/factory.name.
#define INSTANTIATE_CHANNEL_CONFORMANCE(prefix, factory)                      \
    INSTANTIATE_TEST_SUITE_P(prefix, ChannelConformance, ::testing::Values(factory), \
                             [](const auto& param) { return param.param.name; })
