// tcp/ backend: what only tcp has (bulk over four channels, raw-socket peers
// that send garbage, truncated, corrupt or reordered frames, connect errors).
// What every Channel must do (handshake, refusals, frame sizes, order, both
// directions, shutdown, closed peers) is the conformance suite's
// (tests/transport/conformance, instantiated for tcp).
#include <gtest/gtest.h>
#ifdef RMIG_HAVE_RDMA
#include <infiniband/verbs.h>
#endif

#include <cstring>
#include <future>
#include <thread>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "transport/channel.hpp"

using namespace rmig;
using namespace rmig::transport;
using wire::FrameType;

namespace {

wire::Hello data_hello(const wire::SessionId& s, uint32_t id, uint32_t count) {
    wire::Hello h;
    h.role = wire::Role::source;
    h.kind = wire::ChannelKind::data;
    h.session = s;
    h.channel_id = id;
    h.channel_count = count;
    return h;
}

wire::Hello reply_for(const wire::Hello& h) {
    wire::Hello r = h;
    r.role = wire::Role::destination;
    return r;
}

// Deterministic content so the receiver can verify every byte it gets.
void fill(std::vector<std::byte>& buf, uint32_t channel, uint64_t offset) {
    for (size_t i = 0; i < buf.size(); i += 8) {
        uint64_t v = (uint64_t(channel) << 56) ^ (offset + i) * 0x9e3779b97f4a7c15ULL;
        std::memcpy(&buf[i], &v, std::min<size_t>(8, buf.size() - i));
    }
}

struct TcpTest : ::testing::Test {
    std::unique_ptr<Listener> listener = listen("tcp:127.0.0.1:0");
    wire::SessionId session = wire::random_session_id();

    std::unique_ptr<Channel> accept_one() {
        auto in = listener->next(Millis(5000));
        if (!in) throw Error("no connection within 5 s");
        return in->accept(reply_for(in->hello()));
    }

    // A raw TCP peer that completes a valid handshake, for hand-made bad frames.
    UniqueFd raw_peer(uint32_t channel) {
        auto fut = std::async(std::launch::async, [&] { return accept_one(); });
        auto hp = net::parse_host_port(listener->address().substr(4));
        UniqueFd fd = net::tcp_connect(hp, Millis(2000));
        auto b = wire::encode_hello(data_hello(session, channel, 1), false);
        net::write_full(fd.get(), b.data(), b.size());
        wire::HelloBytes r;
        EXPECT_EQ(net::read_full(fd.get(), r.data(), r.size()), r.size());
        server = fut.get();
        return fd;
    }
    std::unique_ptr<Channel> server;
};

template <class F> std::string error_of(F fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_F(TcpTest, FourChannelsMove256MiBWithEveryByteVerified) {
    constexpr uint32_t kChannels = 4;
    constexpr size_t kFrame = 1 << 20, kPerChannel = 64u << 20;
    std::vector<std::unique_ptr<Channel>> servers, clients;
    for (uint32_t c = 1; c <= kChannels; ++c) {
        auto fut = std::async(std::launch::async, [&] { return accept_one(); });
        clients.push_back(connect(listener->address(), data_hello(session, c, kChannels)));
        servers.push_back(fut.get());
    }
    std::vector<std::future<size_t>> receivers;
    for (uint32_t c = 0; c < kChannels; ++c)
        receivers.push_back(std::async(std::launch::async, [&, c] {
            std::vector<std::byte> got, want(kFrame);
            size_t total = 0;
            for (;;) {
                auto t = servers[c]->recv(got);
                if (t == FrameType::end) return total;
                fill(want, c + 1, total);
                want.resize(got.size());
                if (got != want) throw Error(cat("channel ", c + 1, " bytes differ at ", total));
                total += got.size();
            }
        }));
    std::vector<std::thread> senders;
    for (uint32_t c = 0; c < kChannels; ++c)
        senders.emplace_back([&, c] {
            std::vector<std::byte> buf(kFrame);
            for (size_t off = 0; off < kPerChannel; off += kFrame) {
                fill(buf, c + 1, off);
                clients[c]->send(FrameType::data, buf);
            }
            clients[c]->send(FrameType::end, {});
        });
    for (auto& t : senders) t.join();
    for (auto& r : receivers) EXPECT_EQ(r.get(), kPerChannel);
}

TEST_F(TcpTest, GarbageClientIsDroppedAndListenerGoesOn) {
    auto fut = std::async(std::launch::async, [&] { return accept_one(); });
    {
        auto hp = net::parse_host_port(listener->address().substr(4));
        UniqueFd fd = net::tcp_connect(hp, Millis(2000));
        std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(64, 'x');
        net::write_full(fd.get(), junk.data(), junk.size());
        char c;
        // Closed on us (EOF, or a reset since our junk was left unread): nothing accepted.
        size_t n = 0;
        EXPECT_NE(error_of([&] { n = net::read_full(fd.get(), &c, 1); }) == "(no error)" && n > 0,
                  true);
    }
    auto good = connect(listener->address(), data_hello(session, 2, 2));
    EXPECT_EQ(fut.get()->peer_hello().channel_id, 2u);
}

TEST_F(TcpTest, ConnectToNobodyNamesTheAddress) {
    auto port = net::parse_host_port(listener->address().substr(4)).port;
    listener.reset();
    auto msg = error_of([&] { connect(cat("tcp:127.0.0.1:", port), data_hello(session, 1, 1)); });
    EXPECT_NE(msg.find(cat("127.0.0.1:", port)), std::string::npos) << msg;
    EXPECT_NE(msg.find("refused"), std::string::npos) << msg;
}

TEST_F(TcpTest, TruncatedFrameIsNamed) {
    UniqueFd fd = raw_peer(3);
    wire::FrameEncoder enc(3);
    std::vector<std::byte> payload(1000, std::byte{1});
    auto h = enc.encode(FrameType::data, payload);
    net::write_full(fd.get(), h.data(), h.size());
    net::write_full(fd.get(), payload.data(), 400);
    fd.reset();
    std::vector<std::byte> got;
    auto msg = error_of([&] { server->recv(got); });
    EXPECT_NE(msg.find("channel 3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated frame 0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("400 of 1000 payload"), std::string::npos) << msg;
}

TEST_F(TcpTest, CorruptFrameFailsChecksum) {
    UniqueFd fd = raw_peer(1);
    wire::FrameEncoder enc(1);
    std::vector<std::byte> payload(4096, std::byte{1});
    auto h = enc.encode(FrameType::data, payload);
    payload[100] = std::byte{2};
    net::write_full(fd.get(), h.data(), h.size());
    net::write_full(fd.get(), payload.data(), payload.size());
    std::vector<std::byte> got;
    auto msg = error_of([&] { server->recv(got); });
    EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;
}

TEST_F(TcpTest, ReorderedFramesAreDetected) {
    UniqueFd fd = raw_peer(1);
    wire::FrameEncoder enc(1);
    std::vector<std::byte> p(10, std::byte{1});
    auto h0 = enc.encode(FrameType::data, p);
    auto h1 = enc.encode(FrameType::data, p);
    for (auto* h : {&h1, &h0}) {
        net::write_full(fd.get(), h->data(), h->size());
        net::write_full(fd.get(), p.data(), p.size());
    }
    std::vector<std::byte> got;
    auto msg = error_of([&] { server->recv(got); });
    EXPECT_NE(msg.find("out of order: expected sequence 0, got 1"), std::string::npos) << msg;
}

TEST(TcpUri, UnknownTransportIsExplained) {
    auto msg = error_of([] { listen("dpdk:127.0.0.1:0"); });
#ifdef RMIG_HAVE_DPDK
    EXPECT_NE(msg.find("neither a DPDK virtual device"), std::string::npos) << msg;
#else
    EXPECT_NE(msg.find("transport 'dpdk' is not built"), std::string::npos) << msg;
#endif
    msg = error_of([] { listen("tcp:127.0.0.1:99999"); });
    EXPECT_NE(msg.find("bad port"), std::string::npos) << msg;
}

#ifdef RMIG_HAVE_RDMA
// On a machine without RDMA (like CI's host) rdma: must say so and how to fix it;
// where a device exists the same call must work.
TEST(RdmaUri, MissingDeviceIsExplained) {
    int n = 0;
    if (ibv_device** l = ibv_get_device_list(&n)) ibv_free_device_list(l);
    auto msg = error_of([] { listen("rdma:127.0.0.1:0"); });
    if (n == 0) {
        EXPECT_NE(msg.find("no RDMA device on this machine"), std::string::npos) << msg;
        EXPECT_NE(msg.find("rdma link add"), std::string::npos) << msg;
    } else {
        EXPECT_EQ(msg.find("no RDMA device"), std::string::npos) << msg;
    }
}
#endif
