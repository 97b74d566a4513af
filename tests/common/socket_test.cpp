#include "common/socket.hpp"

#include <gtest/gtest.h>

#include <future>

#include "common/error.hpp"

using namespace rmig;

TEST(HostPort, ParsesNamesV4AndV6) {
    auto a = net::parse_host_port("dst-host:7070");
    EXPECT_EQ(a.host, "dst-host");
    EXPECT_EQ(a.port, 7070);
    auto b = net::parse_host_port("[::1]:0");
    EXPECT_EQ(b.host, "::1");
    EXPECT_EQ(b.str(), "[::1]:0");
    auto c = net::parse_host_port(":9");
    EXPECT_EQ(c.host, "");
    EXPECT_EQ(c.port, 9);
}

TEST(HostPort, RejectsBadAddresses) {
    for (const char* bad : {"nohost", "h:", "h:70000", "h:-1", "[::1", "[::1]7070", "h:12x"})
        EXPECT_THROW(net::parse_host_port(bad), Error) << bad;
}

TEST(Sockets, UnixRoundTripAndTimeouts) {
    std::string path = "/tmp/rmig-socket-test-" + std::to_string(::getpid());
    UniqueFd l = net::unix_listen(path);
    EXPECT_FALSE(net::accept_for(l.get(), std::chrono::milliseconds(20)));
    auto fut = std::async(std::launch::async,
                          [&] { return net::unix_connect(path, std::chrono::milliseconds(1000)); });
    UniqueFd s = net::accept_for(l.get(), std::chrono::milliseconds(2000));
    ASSERT_TRUE(s);
    UniqueFd c = fut.get();
    std::string msg(100000, 'q');
    auto writer = std::async(std::launch::async, [&] { net::write_full(c.get(), msg.data(), msg.size()); });
    std::string got(msg.size(), '\0');
    EXPECT_EQ(net::read_full(s.get(), got.data(), got.size()), msg.size());
    writer.get();
    EXPECT_EQ(got, msg);
    c.reset();
    char x;
    EXPECT_EQ(net::read_full(s.get(), &x, 1), 0u);
    ::unlink(path.c_str());
}

TEST(Sockets, ConnectingToAMissingSocketNamesIt) {
    try {
        net::unix_connect("/tmp/rmig-no-such-socket", std::chrono::milliseconds(50));
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("/tmp/rmig-no-such-socket"), std::string::npos);
    }
}
