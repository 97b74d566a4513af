// The channel relay without QEMU: the test plays both QEMUs on real UNIX
// sockets, and the source and destination relays talk over real TCP on
// loopback. Checks stream order (connection k on the source side is connection
// k on the destination side), every byte in both directions, clean ends, and
// that a vanished destination closes the source's streams with a named error.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <future>
#include <thread>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "qemu-plugin/dest_relay.hpp"
#include "qemu-plugin/flow_attach.hpp"
#include "qemu-plugin/source_relay.hpp"
#include "security/context.hpp"
#include "security/errors.hpp"
#include "security/secure_transport.hpp"
#include "wire/stream_segment.hpp"

using namespace rmig;
using namespace rmig::qemu;
using std::chrono::milliseconds;

namespace {

constexpr uint32_t kConns = 5;

void fill(std::vector<char>& buf, uint32_t conn, uint64_t offset) {
    for (size_t i = 0; i < buf.size(); ++i)
        buf[i] = static_cast<char>((offset + i) * 31 + conn * 7 + ((offset + i) >> 12));
}

// The destination side: a relay fed by a TCP listener, delivering into a
// UNIX socket that the test accepts on as "destination QEMU".
struct DestSide {
    DestSide(const wire::SessionId& s, const std::string& qemu_sock, milliseconds attach_timeout = milliseconds(10000))
        : listener(transport::listen("tcp:127.0.0.1:0")),
          relay(std::make_unique<DestRelay>(qemu_sock, s, kConns, FlowSettings{.chunk = 256 << 10},
                                            attach_timeout)) {
        acceptor = std::jthread([this](std::stop_token st) {
            while (!st.stop_requested()) {
                auto in = listener->next(milliseconds(50));
                if (in && relay) relay->offer(std::move(in));
            }
        });
    }
    std::unique_ptr<transport::Listener> listener;
    std::unique_ptr<DestRelay> relay;
    std::jthread acceptor;
};

struct RelayTest : ::testing::Test {
    std::string dir = [] {
        std::string t = "/tmp/rmig-relay-test-XXXXXX";
        if (!::mkdtemp(t.data())) throw Error("mkdtemp");
        return t;
    }();
    wire::SessionId session = wire::random_session_id();
    UniqueFd dest_qemu_listen = net::unix_listen(dir + "/dest-qemu.sock");
    std::unique_ptr<DestSide> dest = std::make_unique<DestSide>(session, dir + "/dest-qemu.sock");

    std::unique_ptr<SourceRelay> source_relay() {
        RelayConfig rc;
        rc.dest_uris = {dest->listener->address()};
        rc.session = session;
        rc.channels = kConns;
        rc.flow.chunk = 256 << 10;
        auto r = std::make_unique<SourceRelay>(dir + "/source.sock", rc);
        r->start();
        return r;
    }
    ~RelayTest() override { std::system(("rm -rf " + dir).c_str()); }
};

}  // namespace

TEST_F(RelayTest, StreamsKeepTheirOrderAndEveryByte) {
    auto relay = source_relay();
    constexpr size_t kBytes = 24 << 20;
    // "Source QEMU": opens all connections back to back (as multifd does), each
    // starting with its index, then streams a pattern and closes.
    std::vector<UniqueFd> src;
    for (uint32_t k = 0; k < kConns; ++k) src.push_back(net::unix_connect(relay->socket_path(), milliseconds(2000)));
    std::vector<std::thread> writers;
    for (uint32_t k = 0; k < kConns; ++k)
        writers.emplace_back([&, k] {
            net::write_full(src[k].get(), &k, sizeof k);
            std::vector<char> buf(1 << 20);
            for (size_t off = 0; off < kBytes; off += buf.size()) {
                fill(buf, k, off);
                net::write_full(src[k].get(), buf.data(), buf.size());
            }
            ::shutdown(src[k].get(), SHUT_WR);
        });
    // "Destination QEMU": the k-th connection it accepts must carry stream k.
    std::vector<std::future<std::string>> readers;
    std::vector<UniqueFd> dst;
    for (uint32_t k = 0; k < kConns; ++k) {
        UniqueFd fd = net::accept_for(dest_qemu_listen.get(), milliseconds(10000));
        ASSERT_TRUE(fd) << "destination connection " << k << " never came";
        dst.push_back(std::move(fd));
        int f = dst.back().get();
        readers.push_back(std::async(std::launch::async, [f, k]() -> std::string {
            uint32_t id = 99;
            if (net::read_full(f, &id, sizeof id) != sizeof id) return "no stream id";
            if (id != k) return cat("connection ", k, " carries stream ", id);
            std::vector<char> got(1 << 20), want(1 << 20);
            for (size_t off = 0; off < kBytes; off += got.size()) {
                if (net::read_full(f, got.data(), got.size()) != got.size())
                    return cat("stream ", k, " short at ", off);
                fill(want, k, off);
                if (got != want) return cat("stream ", k, " differs near offset ", off);
            }
            char extra;
            if (net::read_full(f, &extra, 1) != 0) return "stream did not end";
            const char reply[] = "ack";
            net::write_full(f, reply, 3);  // the reverse direction, as a return path would
            ::shutdown(f, SHUT_WR);
            return "";
        }));
    }
    for (auto& w : writers) w.join();
    for (auto& r : readers) EXPECT_EQ(r.get(), "");
    for (uint32_t k = 0; k < kConns; ++k) {
        char back[4] = {};
        EXPECT_EQ(net::read_full(src[k].get(), back, 4), 3u);
        EXPECT_STREQ(back, "ack");
    }
    EXPECT_TRUE(relay->streams().wait_finished(kConns, milliseconds(5000)));
    EXPECT_TRUE(dest->relay->streams().wait_finished(kConns, milliseconds(5000)));
    EXPECT_FALSE(relay->streams().error());
    uint64_t total = 0;
    for (auto& c : relay->streams().stats()) total += c.to_link;
    EXPECT_EQ(total, kConns * (kBytes + sizeof(uint32_t)));
}

TEST_F(RelayTest, VanishedDestinationClosesTheSourceStreamsWithANamedError) {
    auto relay = source_relay();
    UniqueFd src = net::unix_connect(relay->socket_path(), milliseconds(2000));
    UniqueFd dst = net::accept_for(dest_qemu_listen.get(), milliseconds(10000));
    ASSERT_TRUE(dst);
    std::vector<char> buf(64 << 10, 'x');
    net::write_full(src.get(), buf.data(), buf.size());
    dest.reset();  // the destination host disappears: its channels close
    // The source QEMU's stream must be cut within bounded time, not hang.
    auto writer = std::async(std::launch::async, [&] {
        try {
            for (int i = 0; i < 100000; ++i) net::write_full(src.get(), buf.data(), buf.size());
        } catch (const Error&) {
            return true;
        }
        return false;
    });
    ASSERT_EQ(writer.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    EXPECT_TRUE(writer.get());
    auto err = relay->streams().error();
    ASSERT_TRUE(err);
    EXPECT_NE(err->find("channel 1"), std::string::npos) << *err;
}

// Flows are admitted side by side, but the destination QEMU gets its
// connections in stream order (QEMU 7.2 takes the first as the main
// channel): a later stream waits for the earlier ones, and is turned away if
// they never come.
TEST_F(RelayTest, ForeignSessionsAreRefusedAndLaterStreamsWaitTheirTurn) {
    dest = std::make_unique<DestSide>(session, dir + "/dest-qemu.sock", milliseconds(1500));
    wire::Hello h;
    h.kind = wire::ChannelKind::data;
    h.session = wire::random_session_id();
    h.channel_id = 1;
    h.channel_count = kConns;
    try {
        transport::connect(dest->listener->address(), h);
        FAIL() << "a foreign session was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("unknown session"), std::string::npos) << e.what();
    }
    h.session = session;
    auto open = [&](uint32_t channel_id) {
        wire::Hello mine = h;
        mine.channel_id = channel_id;
        return transport::connect(dest->listener->address(), mine);
    };
    // Stream 4 with no stream 3 ever: turned away after the attach timeout.
    auto orphan = open(2);
    auto orphan_attach = std::async(std::launch::async, [&] {
        return exchange_attach(*orphan, {4, 0, kConns, 0}, milliseconds(5000));
    });
    // Stream 2 before stream 1: it waits, then goes second.
    auto second = open(3);
    auto second_attach = std::async(std::launch::async, [&] {
        return exchange_attach(*second, {2, 0, kConns, 0}, milliseconds(5000));
    });
    std::this_thread::sleep_for(milliseconds(500));
    EXPECT_EQ(dest->relay->streams().size(), 0u) << "stream 2 reached the destination QEMU before stream 1";
    auto first = open(4);
    EXPECT_EQ(exchange_attach(*first, {1, 0, kConns, 0}, milliseconds(5000)).stream, 1u);
    EXPECT_EQ(second_attach.get().stream, 2u);
    auto streams = dest->relay->streams().stats();
    ASSERT_EQ(streams.size(), 2u);
    EXPECT_EQ(streams[0].channel, 1u);
    EXPECT_EQ(streams[1].channel, 2u);
    EXPECT_THROW(orphan_attach.get(), Error) << "stream 4 was admitted without stream 3";
    EXPECT_EQ(dest->relay->streams().size(), 2u);
}

// With security on, a data channel with a forged token (the attacker saw the
// session id in a plaintext hello, but has no session secret) is turned away
// before anything reaches the destination QEMU, and the real channel still
// gets in and carries its bytes.
TEST_F(RelayTest, ForgedDataChannelIsTurnedAwayBeforeQemuAndTheRealOneStillComes) {
    auto key = [](unsigned char v) {
        security::Config c;
        c.psk.assign(32, v);
        return security::Context::create(c);
    };
    auto real = key(1);
    transport::Options opts;
    opts.handshake_timeout = milliseconds(4000);
    auto listener = security::listen("tcp:127.0.0.1:0", opts, real);
    // The session's control channel, as rmig receive takes it.
    wire::Hello h;
    h.kind = wire::ChannelKind::control;
    h.session = session;
    h.channel_count = 1;
    auto control_in = std::async(std::launch::async, [&] {
        auto in = listener->next(milliseconds(6000));
        if (!in) throw Error("no control channel");
        wire::Hello r = in->hello();
        r.role = wire::Role::destination;
        return in->accept(r);
    });
    auto client_control = security::connect(listener->address(), h, opts, real);
    auto server_control = control_in.get();

    DestRelay relay(dir + "/dest-qemu.sock", session, 1, FlowSettings{.chunk = 256 << 10});
    auto offer_next = [&] {
        return std::async(std::launch::async, [&] {
            auto in = listener->next(milliseconds(6000));
            if (in) relay.offer(std::move(in));
        });
    };
    h.kind = wire::ChannelKind::data;
    h.channel_id = 1;
    auto attacker = key(9);
    security::SessionSecret guess;
    std::memset(guess.data(), 0x42, guess.size());
    auto lease = attacker->connected_sessions().add(session, guess);
    auto offered = offer_next();
    EXPECT_THROW(security::connect(listener->address(), h, opts, attacker), security::AuthError);
    offered.get();
    EXPECT_EQ(relay.streams().size(), 0u);
    EXPECT_FALSE(net::accept_for(dest_qemu_listen.get(), milliseconds(200)))
        << "the forged channel reached the destination QEMU";

    offered = offer_next();
    auto link = security::connect(listener->address(), h, opts, real);
    exchange_attach(*link, {1, 0, 1, 0}, milliseconds(5000));
    offered.get();
    ASSERT_EQ(relay.streams().size(), 1u);
    UniqueFd qemu = net::accept_for(dest_qemu_listen.get(), milliseconds(5000));
    ASSERT_TRUE(qemu) << "the real channel never reached the destination QEMU";
    std::string text = "QEVM main channel bytes";
    std::vector<std::byte> segment(wire::kSegmentHeaderSize);
    wire::encode_segment_header({0, static_cast<uint32_t>(text.size()), wire::SegmentCodec::none, false},
                                std::span(segment).first<wire::kSegmentHeaderSize>());
    for (char c : text) segment.push_back(static_cast<std::byte>(c));
    link->send(wire::FrameType::segment, segment);
    std::string got(text.size(), '\0');
    ASSERT_EQ(net::read_full(qemu.get(), got.data(), got.size()), got.size());
    EXPECT_EQ(got, text);
}
