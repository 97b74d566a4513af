// The source's tuning of its data connections for the measured link.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "common/unique_fd.hpp"
#include "qemu-plugin/link_tuning.hpp"

using namespace rmig;
using namespace rmig::qemu;

namespace {
LinkTuningInput link(double rtt_ms) {
    LinkTuningInput in;
    in.rtt_ms = rtt_ms;
    in.rate_cap = 1.25e9;
    in.connections = 5 * 8;
    in.bbr_usable = true;
    return in;
}
}  // namespace

TEST(LinkTuning, AutoTakesBbrOnLongLinksOnly) {
    EXPECT_EQ(tune_link(link(0.05)).congestion_control, "");
    EXPECT_EQ(tune_link(link(150)).congestion_control, "bbr");
    auto no_bbr = link(150);
    no_bbr.bbr_usable = false;
    auto t = tune_link(no_bbr);
    EXPECT_EQ(t.congestion_control, "");
    EXPECT_NE(t.why.find("not available"), std::string::npos) << t.why;
}

TEST(LinkTuning, AskedCongestionControlIsKept) {
    auto in = link(0.05);
    in.congestion = "cubic";
    EXPECT_EQ(tune_link(in).congestion_control, "cubic");
    in = link(150);
    in.congestion = kCongestionHost;
    EXPECT_EQ(tune_link(in).congestion_control, "");
}

TEST(LinkTuning, BuffersCoverTwiceEachConnectionsShareOfTheBdp) {
    // 150 ms at 10 Gbit/s is 187.5 MB; 40 connections: 2 x 4.7 MB each.
    auto t = tune_link(link(150));
    EXPECT_NEAR(t.socket_buffer, 2 * 1.25e9 * 0.150 / 40, 1);
    // A short link keeps the default; a huge one stops at the ceiling.
    EXPECT_EQ(tune_link(link(1)).socket_buffer, 8 << 20);
    auto one = link(300);
    one.connections = 1;
    EXPECT_EQ(tune_link(one).socket_buffer, kMaxAutoSocketBuffer);
    // A buffer the user chose is never overridden.
    auto given = link(150);
    given.socket_buffer = 1 << 20;
    given.socket_buffer_given = true;
    EXPECT_EQ(tune_link(given).socket_buffer, 1 << 20);
}

TEST(LinkTuning, SocketsGetTheCongestionControlOrAClearError) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(fd);
    ASSERT_TRUE(congestion_control_usable("reno")) << "reno is built into every Linux kernel";
    net::set_congestion_control(fd.get(), "reno");
    char name[16] = {};
    socklen_t len = sizeof name;
    ASSERT_EQ(::getsockopt(fd.get(), IPPROTO_TCP, TCP_CONGESTION, name, &len), 0);
    EXPECT_STREQ(name, "reno");
    EXPECT_FALSE(congestion_control_usable("no-such-cc"));
    try {
        net::set_congestion_control(fd.get(), "no-such-cc");
        FAIL() << "an unknown congestion control was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no-such-cc"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("modprobe"), std::string::npos) << e.what();
    }
}
