// FaultProxy over loopback with plain sockets: it forwards byte for byte, and
// each fault does exactly what it says (one flipped byte at the chosen offset,
// nothing forwarded while stalled or gated, late delivery after a delay, RST
// on a cut).
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "lab/fault_proxy.hpp"

using namespace rmig;
using std::chrono::milliseconds;

namespace {

struct Link {
    UniqueFd upstream_listener, client, server;
    std::unique_ptr<lab::FaultProxy> proxy;

    explicit Link(bool gated = false) {
        upstream_listener = net::tcp_listen(net::parse_host_port("127.0.0.1:0"));
        proxy = std::make_unique<lab::FaultProxy>(
            "tcp:127.0.0.1:" + std::to_string(net::local_port(upstream_listener.get())), gated);
        std::string addr = proxy->address().substr(4);
        client = net::tcp_connect(net::parse_host_port(addr), milliseconds(2000));
        server = net::accept_for(upstream_listener.get(), milliseconds(2000));
    }
};

std::vector<unsigned char> pattern(size_t n) {
    std::vector<unsigned char> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<unsigned char>(i * 7 + 1);
    return v;
}

std::vector<unsigned char> read_n(int fd, size_t n) {
    std::vector<unsigned char> v(n);
    size_t got = net::read_full(fd, v.data(), n);
    v.resize(got);
    return v;
}

}  // namespace

TEST(FaultProxy, ForwardsBothWaysByteForByte) {
    Link l;
    ASSERT_TRUE(l.server.valid());
    auto data = pattern(300000);
    std::thread w([&] { net::write_full(l.client.get(), data.data(), data.size()); });
    EXPECT_EQ(read_n(l.server.get(), data.size()), data);
    w.join();
    auto back = pattern(1000);
    net::write_full(l.server.get(), back.data(), back.size());
    EXPECT_EQ(read_n(l.client.get(), back.size()), back);
    EXPECT_EQ(l.proxy->connections(), 1u);
    EXPECT_EQ(l.proxy->forwarded(0), data.size());
    EXPECT_FALSE(l.proxy->applied());
}

TEST(FaultProxy, CorruptFlipsExactlyOneByteAtTheOffset) {
    Link l;
    ASSERT_TRUE(l.server.valid());
    auto first = pattern(100);
    net::write_full(l.client.get(), first.data(), first.size());
    EXPECT_EQ(read_n(l.server.get(), first.size()), first);
    l.proxy->apply(lab::LinkFault::corrupt, 0, 5000);
    auto data = pattern(20000);
    net::write_full(l.client.get(), data.data(), data.size());
    auto got = read_n(l.server.get(), data.size());
    ASSERT_EQ(got.size(), data.size());
    size_t diffs = 0;
    for (size_t i = 0; i < data.size(); ++i)
        if (got[i] != data[i]) {
            ++diffs;
            EXPECT_EQ(i, 5000u);
            EXPECT_EQ(got[i], data[i] ^ 0x5a);
        }
    EXPECT_EQ(diffs, 1u);
    EXPECT_TRUE(l.proxy->applied());
}

TEST(FaultProxy, StallForwardsNothingAndKeepsTheSocketsOpen) {
    Link l;
    ASSERT_TRUE(l.server.valid());
    l.proxy->apply(lab::LinkFault::stall, 0);
    auto data = pattern(1000);
    net::write_full(l.client.get(), data.data(), data.size());
    net::write_full(l.server.get(), data.data(), data.size());
    EXPECT_FALSE(net::wait_readable(l.server.get(), milliseconds(400)));
    EXPECT_FALSE(net::wait_readable(l.client.get(), milliseconds(50)));
}

TEST(FaultProxy, DelayHoldsTheChannelThenDelivers) {
    Link l;
    ASSERT_TRUE(l.server.valid());
    l.proxy->apply(lab::LinkFault::delay, 0, 0, milliseconds(500));
    auto t0 = std::chrono::steady_clock::now();
    auto data = pattern(1000);
    net::write_full(l.client.get(), data.data(), data.size());
    EXPECT_EQ(read_n(l.server.get(), data.size()), data);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(400));
}

TEST(FaultProxy, GateHoldsEverythingUntilOpened) {
    Link l(true);
    ASSERT_TRUE(l.server.valid());
    auto data = pattern(100);
    net::write_full(l.client.get(), data.data(), data.size());
    EXPECT_FALSE(net::wait_readable(l.server.get(), milliseconds(300)));
    EXPECT_EQ(l.proxy->forwarded(0), 0u);
    l.proxy->open_gate();
    EXPECT_EQ(read_n(l.server.get(), data.size()), data);
}

TEST(FaultProxy, CutResetsBothSides) {
    Link l;
    ASSERT_TRUE(l.server.valid());
    l.proxy->apply(lab::LinkFault::cut, 0);
    for (int fd : {l.client.get(), l.server.get()}) {
        ASSERT_TRUE(net::wait_readable(fd, milliseconds(2000)));
        char c;
        ssize_t n = ::recv(fd, &c, 1, 0);
        EXPECT_EQ(n, -1) << "expected a reset, got " << n;
        EXPECT_EQ(errno, ECONNRESET) << std::strerror(errno);
    }
    // New connections through a cut link are reset too.
    // (The reset can come before connect() has even returned.)
    std::string addr = l.proxy->address().substr(4);
    try {
        UniqueFd again = net::tcp_connect(net::parse_host_port(addr), milliseconds(2000));
        ASSERT_TRUE(net::wait_readable(again.get(), milliseconds(2000)));
        char c;
        EXPECT_LE(::recv(again.get(), &c, 1, 0), 0);
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("reset"), std::string::npos) << e.what();
    }
}

TEST(FaultProxy, DownResetsEverythingUntilTheLinkIsBack) {
    Link l;
    ASSERT_TRUE(l.server.valid());
    l.proxy->apply(lab::LinkFault::down, 0, 0, milliseconds(600));
    for (int fd : {l.client.get(), l.server.get()}) {
        ASSERT_TRUE(net::wait_readable(fd, milliseconds(2000)));
        char c;
        EXPECT_EQ(::recv(fd, &c, 1, 0), -1) << "expected a reset";
        EXPECT_EQ(errno, ECONNRESET) << std::strerror(errno);
    }
    // While down, a new connection is reset on accept.
    const auto addr = net::parse_host_port(l.proxy->address().substr(4));
    try {
        UniqueFd during = net::tcp_connect(addr, milliseconds(2000));
        ASSERT_TRUE(net::wait_readable(during.get(), milliseconds(2000)));
        char c;
        EXPECT_LE(::recv(during.get(), &c, 1, 0), 0);
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("reset"), std::string::npos) << e.what();
    }
    // Once it is back, a new connection forwards byte for byte.
    std::this_thread::sleep_for(milliseconds(700));
    UniqueFd after = net::tcp_connect(addr, milliseconds(2000));
    UniqueFd server = net::accept_for(l.upstream_listener.get(), milliseconds(2000));
    ASSERT_TRUE(server.valid());
    auto data = pattern(5000);
    net::write_full(after.get(), data.data(), data.size());
    EXPECT_EQ(read_n(server.get(), data.size()), data);
}

TEST(FaultProxy, RateLimitHoldsTheSourceToTheRate) {
    Link l;
    ASSERT_TRUE(l.server.valid());
    l.proxy->limit_rate(2u << 20);  // 2 MiB/s: 1 MiB takes ~0.5 s
    auto data = pattern(1u << 20);
    const auto t0 = std::chrono::steady_clock::now();
    std::thread w([&] { net::write_full(l.client.get(), data.data(), data.size()); });
    EXPECT_EQ(read_n(l.server.get(), data.size()), data);
    w.join();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(400));
}
