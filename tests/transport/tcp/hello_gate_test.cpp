// The tcp listener's hello gate: strangers who connect and say nothing, or
// one byte, are dropped at their deadline or pushed out by newer arrivals;
// a real peer's hello gets through at once meanwhile.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "common/socket.hpp"
#include "common/unique_fd.hpp"
#include "transport/channel.hpp"

using namespace rmig;
using namespace rmig::transport;
using namespace std::chrono_literals;

namespace {

Options small_bounds() {
    Options o;
    o.hello_timeout = Millis(400);
    o.pending = {8, 4};
    return o;
}

bool closed_by_listener(int fd, Millis within) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(within.count())) != 1) return false;
    char c;
    return ::read(fd, &c, 1) <= 0;
}

std::unique_ptr<Channel> connect_data(const std::string& address) {
    wire::Hello h;
    h.kind = wire::ChannelKind::control;
    h.session = wire::random_session_id();
    return connect(address, h);
}

}  // namespace

TEST(TcpHelloGate, RealPeerGetsThroughWhileStrangersHoldEverySlot) {
    auto l = listen("tcp:127.0.0.1:0", small_bounds());
    auto hp = net::parse_host_port(l->address().substr(4));
    std::vector<UniqueFd> strangers;
    for (int i = 0; i < 50; ++i) strangers.push_back(net::tcp_connect(hp, 2000ms));
    std::this_thread::sleep_for(100ms);
    auto t0 = std::chrono::steady_clock::now();
    auto client = std::async(std::launch::async, [&] { return connect_data(l->address()); });
    auto in = l->next(2000ms);
    ASSERT_TRUE(in);
    wire::Hello r = in->hello();
    r.role = wire::Role::destination;
    auto server = in->accept(r);
    ASSERT_TRUE(client.get());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    // Only the bound's worth of strangers is held; the rest were pushed out.
    size_t dropped = 0;
    for (auto& s : strangers) dropped += closed_by_listener(s.get(), 0ms) ? 1 : 0;
    EXPECT_GE(dropped, 50u - 4u);
}

TEST(TcpHelloGate, PartialHelloIsDroppedAtItsDeadline) {
    auto l = listen("tcp:127.0.0.1:0", small_bounds());
    auto hp = net::parse_host_port(l->address().substr(4));
    UniqueFd s = net::tcp_connect(hp, 2000ms);
    ASSERT_EQ(::write(s.get(), "R", 1), 1);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(closed_by_listener(s.get(), 3000ms));
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 2000ms);
    EXPECT_EQ(l->next(100ms), nullptr) << "the owner never sees it";
}

TEST(TcpHelloGate, HelloSentByteByByteStillCounts) {
    auto l = listen("tcp:127.0.0.1:0", small_bounds());
    auto hp = net::parse_host_port(l->address().substr(4));
    UniqueFd s = net::tcp_connect(hp, 2000ms);
    wire::Hello h;
    h.kind = wire::ChannelKind::control;
    auto b = wire::encode_hello(h, false);
    for (auto byte : b) {
        ASSERT_EQ(::write(s.get(), &byte, 1), 1);
        std::this_thread::sleep_for(2ms);
    }
    auto in = l->next(2000ms);
    ASSERT_TRUE(in);
    EXPECT_EQ(in->hello().kind, wire::ChannelKind::control);
}
