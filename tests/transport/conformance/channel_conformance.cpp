// The cases of the Channel conformance suite (channel_conformance.hpp): what
// transport/channel.hpp promises, checked the same way on every backend.
// Every byte is verified, every loop is bounded and every wait has a deadline.
#include "tests/transport/conformance/channel_conformance.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "common/error.hpp"
#include "security/context.hpp"
#include "security/secure_transport.hpp"

namespace rmig::test::conformance {

using namespace std::chrono_literals;
using transport::Channel;
using transport::Millis;
using wire::FrameType;

namespace {

constexpr Millis kAccept{10000};  // a connection request to show up at the listener
constexpr Millis kShort{20000};   // a handful of frames, an error to surface
constexpr Millis kBulk{90000};    // tens of MiB (dpdk and Soft-RoCE are slow on 2 shared cores)

template <class F> std::string error_of(F&& fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<std::byte> patterned(size_t n, uint64_t seed) {
    std::vector<std::byte> v(n);
    fill_pattern(v, seed);
    return v;
}

// Sizes worth a frame of their own: empty, tiny, odd, around pages, the largest.
std::vector<size_t> frame_sizes(size_t max) {
    std::vector<size_t> s{0, 1, 2, 3, 7, 31, 255, 4095, 4096, 4097, 65535, 65537, (1u << 20) + 7};
    std::erase_if(s, [&](size_t n) { return n >= max - 1; });
    s.push_back(max - 1);
    s.push_back(max);
    return s;
}

// Mostly data, with every other type a caller sends mid-stream mixed in.
FrameType type_of(uint64_t i) {
    constexpr FrameType kTypes[] = {FrameType::data, FrameType::data, FrameType::control, FrameType::data,
                                    FrameType::abort};
    return kTypes[i % std::size(kTypes)];
}

}  // namespace

void abort_still_blocked() {
    std::fprintf(stderr, "channel conformance: a task is still blocked 15 s after shutdown() of its "
                         "channels; aborting rather than hanging\n");
    std::abort();
}

void fill_pattern(std::span<std::byte> dst, uint64_t seed, size_t offset) {
    for (size_t i = 0; i < dst.size(); ++i) dst[i] = pattern(seed, offset + i);
}

size_t first_mismatch(std::span<const std::byte> got, uint64_t seed, size_t offset) {
    for (size_t i = 0; i < got.size(); ++i)
        if (got[i] != pattern(seed, offset + i)) return i;
    return SIZE_MAX;
}

void ChannelConformance::SetUp() {
    if (auto why = factory().unavailable(); !why.empty()) GTEST_SKIP() << why;
    link_ = factory().make();
    ASSERT_TRUE(link_ && link_->listener);
}

void ChannelConformance::TearDown() {
    if (!link_) return;
    link_->keep.clear();
    link_.reset();
}

wire::Hello ChannelConformance::hello(uint32_t id, uint32_t count) const {
    wire::Hello h;
    h.role = wire::Role::source;
    h.kind = wire::ChannelKind::data;
    h.session = link_->session;
    h.channel_id = id;
    h.channel_count = count;
    return h;
}

std::unique_ptr<Channel> ChannelConformance::connect(const wire::Hello& h) {
    return security::connect(link_->connect_uri, h, link_->connect_opts, link_->security);
}

Pair ChannelConformance::open(uint32_t id, uint32_t count) {
    auto* l = link_->listener.get();
    Task<std::unique_ptr<Channel>> acceptor(
        [l] {
            auto in = l->next(kAccept);
            if (!in) throw Error(cat("no connection at ", l->address(), " within ", kAccept.count(), " ms"));
            wire::Hello r = in->hello();
            r.role = wire::Role::destination;
            return in->accept(r);
        },
        {});
    Pair p;
    p.client = connect(hello(id, count));
    p.server = acceptor.get(kAccept + 10s, cat("accepting channel ", id));
    if (!p.client || !p.server) throw Error(cat("channel ", id, ": an end is missing"));
    return p;
}

// --- handshake -------------------------------------------------------------

TEST_P(ChannelConformance, HelloReachesTheAcceptorAndTheReplyTheConnector) {
    const wire::Hello asked = hello(3, 4);
    auto* l = link().listener.get();
    wire::Hello seen;
    std::string peer;
    Task<std::unique_ptr<Channel>> acceptor(
        [&]() -> std::unique_ptr<Channel> {
            auto in = l->next(kAccept);
            if (!in) throw Error("no connection");
            seen = in->hello();
            peer = in->peer();
            wire::Hello r = in->hello();
            r.role = wire::Role::destination;
            return in->accept(r);
        },
        {});
    auto client = connect(asked);
    auto server = acceptor.get(kShort, "accept");
    ASSERT_TRUE(client && server);
    // What Incoming::hello() showed before accepting is what the connector sent.
    EXPECT_EQ(seen.session, asked.session);
    EXPECT_EQ(seen.kind, wire::ChannelKind::data);
    EXPECT_EQ(seen.role, wire::Role::source);
    EXPECT_EQ(seen.channel_id, 3u);
    EXPECT_EQ(seen.channel_count, 4u);
    EXPECT_EQ(seen.version, wire::kProtocolVersion);
    EXPECT_FALSE(peer.empty());
    // The accepted channel keeps it, and the connector got the acceptor's reply.
    EXPECT_EQ(server->peer_hello().session, asked.session);
    EXPECT_EQ(server->peer_hello().channel_id, 3u);
    EXPECT_EQ(server->peer_hello().channel_count, 4u);
    EXPECT_EQ(client->peer_hello().role, wire::Role::destination);
    EXPECT_EQ(client->peer_hello().status, wire::HelloStatus::ok);
    EXPECT_EQ(client->peer_hello().session, asked.session);
    EXPECT_EQ(client->peer_hello().channel_id, 3u);
    // Errors name the channel, so its name must say which one it is.
    EXPECT_TRUE(contains(client->name(), "channel 3")) << client->name();
    EXPECT_TRUE(contains(server->name(), "channel 3")) << server->name();
    EXPECT_EQ(client->fills_in_place(), factory().fills_in_place);
    EXPECT_EQ(server->fills_in_place(), factory().fills_in_place);
    EXPECT_EQ(client->recv_into_is_direct(), factory().recv_into_is_direct);
    EXPECT_EQ(server->recv_into_is_direct(), factory().recv_into_is_direct);
    EXPECT_GT(client->max_frame_payload(), 4096u);
    EXPECT_LE(client->max_frame_payload(), wire::kMaxFramePayload);
}

TEST_P(ChannelConformance, RefusalReachesTheConnectorWithItsStatusAndTheListenerGoesOn) {
    auto* l = link().listener.get();
    const wire::HelloStatus statuses[] = {wire::HelloStatus::unknown_session, wire::HelloStatus::busy};
    for (uint32_t i = 0; i < 2; ++i) {
        Task<bool> refuser(
            [&, i] {
                auto in = l->next(kAccept);
                if (!in) return false;
                in->refuse(statuses[i]);
                return true;
            },
            {});
        auto msg = error_of([&] { connect(hello(i + 1)); });
        EXPECT_TRUE(refuser.get(kShort, "refusing"));
        EXPECT_TRUE(contains(msg, cat("refused channel ", i + 1, ": ", wire::to_string(statuses[i]))))
            << msg;
    }
    // Refusals leave the listener working: the next channel is accepted and carries frames.
    auto p = open(3);
    auto msg = patterned(100, 3);
    p.client->send(FrameType::data, msg);
    std::vector<std::byte> got;
    Task<FrameType> r([&] { return p.server->recv(got); }, {p.server.get()});
    EXPECT_EQ(r.get(kShort, "recv"), FrameType::data);
    EXPECT_EQ(got, msg);
}

TEST_P(ChannelConformance, OtherProtocolVersionIsRefusedAndTheListenerGoesOn) {
    auto* l = link().listener.get();
    // The listener refuses it by itself: next() only returns the good one.
    Task<std::unique_ptr<Channel>> acceptor(
        [l]() -> std::unique_ptr<Channel> {
            auto in = l->next(kAccept + kAccept);
            if (!in) return nullptr;
            wire::Hello r = in->hello();
            r.role = wire::Role::destination;
            return in->accept(r);
        },
        {});
    wire::Hello future = hello(1);
    future.version = 9;
    auto msg = error_of([&] { connect(future); });
    EXPECT_TRUE(contains(msg, "refused channel 1: protocol version not supported")) << msg;
    auto good = connect(hello(2));
    auto server = acceptor.get(kShort + kAccept, "accepting after a refused version");
    ASSERT_TRUE(server);
    EXPECT_EQ(server->peer_hello().channel_id, 2u);
    EXPECT_EQ(server->peer_hello().version, wire::kProtocolVersion);
}

TEST_P(ChannelConformance, ListenerWithNobodyComingTimesOut) {
    auto t0 = std::chrono::steady_clock::now();
    Task<bool> waiter([&] { return link().listener->next(Millis(300)) == nullptr; }, {});
    EXPECT_TRUE(waiter.get(kShort, "listener next(300 ms)"));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);
}

// --- frames ----------------------------------------------------------------

TEST_P(ChannelConformance, FramesOfEverySizeArriveWholeUpToTheMaximum) {
    auto p = open(1);
    const auto sizes = frame_sizes(p.client->max_frame_payload());
    Task<std::string> receiver(
        [&]() -> std::string {
            std::vector<std::byte> got(77, std::byte{0xee});  // stale content must not survive
            for (uint64_t f = 0; f < sizes.size(); ++f) {
                auto t = p.server->recv(got);
                if (t != type_of(f)) return cat("frame ", f, ": type ", int(t));
                if (got.size() != sizes[f]) return cat("frame ", f, ": ", got.size(), " bytes, sent ", sizes[f]);
                if (auto at = first_mismatch(got, f); at != SIZE_MAX) return cat("frame ", f, ": byte ", at, " differs");
            }
            return "";
        },
        {p.server.get()});
    for (uint64_t f = 0; f < sizes.size(); ++f) p.client->send(type_of(f), patterned(sizes[f], f));
    EXPECT_EQ(receiver.get(kBulk, "receiving every size"), "");
}

TEST_P(ChannelConformance, ManyFramesKeepTheirOrder) {
    auto p = open(1);
    constexpr uint64_t kFrames = 3000;
    Task<std::string> receiver(
        [&]() -> std::string {
            std::vector<std::byte> got;
            for (uint64_t i = 0; i < kFrames; ++i) {
                if (p.server->recv(got) != type_of(i)) return cat("frame ", i, ": wrong type");
                uint64_t n = 0;
                if (got.size() != 8 + i % 97) return cat("frame ", i, ": ", got.size(), " bytes");
                std::memcpy(&n, got.data(), 8);
                if (n != i) return cat("frame ", i, " arrived as number ", n);
                if (first_mismatch(std::span(got).subspan(8), i) != SIZE_MAX) return cat("frame ", i, " damaged");
            }
            return "";
        },
        {p.server.get()});
    std::vector<std::byte> buf;
    for (uint64_t i = 0; i < kFrames; ++i) {
        buf.resize(8 + i % 97);
        std::memcpy(buf.data(), &i, 8);
        fill_pattern(std::span(buf).subspan(8), i);
        p.client->send(type_of(i), buf);
    }
    EXPECT_EQ(receiver.get(kBulk, "receiving in order"), "");
}

TEST_P(ChannelConformance, BothDirectionsAtOnceOneSenderAndOneReceiverThreadPerSide) {
    auto p = open(1);
    constexpr uint64_t kFrames = 400;
    const size_t max = std::min<size_t>(p.client->max_frame_payload(), 64 << 10);
    auto size_of = [max](uint64_t i) { return (i * 7919) % max + 1; };
    // Seeds tell the directions apart: a frame that crossed over would not verify.
    auto send_all = [&](Channel& ch, uint64_t seed) {
        std::vector<std::byte> buf;
        for (uint64_t i = 0; i < kFrames; ++i) {
            buf.resize(size_of(i));
            fill_pattern(buf, seed + i);
            ch.send(FrameType::data, buf);
        }
        ch.send(FrameType::end, {});
        return std::string();
    };
    auto recv_all = [&](Channel& ch, uint64_t seed) -> std::string {
        std::vector<std::byte> got;
        for (uint64_t i = 0; i < kFrames; ++i) {
            if (ch.recv(got) != FrameType::data) return cat(ch.name(), ": frame ", i, " not data");
            if (got.size() != size_of(i) || first_mismatch(got, seed + i) != SIZE_MAX)
                return cat(ch.name(), ": frame ", i, " differs (", got.size(), " bytes)");
        }
        return ch.recv(got) == FrameType::end && got.empty() ? "" : cat(ch.name(), ": no end frame");
    };
    std::vector<Channel*> both{p.client.get(), p.server.get()};
    Task<std::string> c_send([&] { return send_all(*p.client, 1000); }, both);
    Task<std::string> c_recv([&] { return recv_all(*p.client, 5000); }, both);
    Task<std::string> s_send([&] { return send_all(*p.server, 5000); }, both);
    Task<std::string> s_recv([&] { return recv_all(*p.server, 1000); }, both);
    EXPECT_EQ(c_send.get(kBulk, "client sender"), "");
    EXPECT_EQ(s_send.get(kBulk, "server sender"), "");
    EXPECT_EQ(c_recv.get(kBulk, "client receiver"), "");
    EXPECT_EQ(s_recv.get(kBulk, "server receiver"), "");
}

// --- recv_into / send_filled ----------------------------------------------

TEST_P(ChannelConformance, RecvIntoScattersAFrameOverPiecesOfAnySize) {
    auto p = open(1);
    const auto sizes = frame_sizes(p.client->max_frame_payload());
    Task<std::string> receiver(
        [&]() -> std::string {
            std::vector<std::byte> out;
            for (uint64_t f = 0; f < sizes.size(); ++f) {
                std::string bad;
                auto t = p.server->recv_into([&](FrameType, size_t length, transport::PayloadReader& r) {
                    if (length != sizes[f] || r.left() != length) bad = cat("frame ", f, ": length ", length);
                    out.assign(length, std::byte{0});
                    std::span<std::byte> rest(out);
                    // A byte, then an odd piece, then the rest scattered over three
                    // pieces in one call (the middle one empty).
                    auto take = [&](size_t n) {
                        auto s = rest.first(std::min(n, rest.size()));
                        rest = rest.subspan(s.size());
                        return s;
                    };
                    std::span<std::byte> one[] = {take(1)};
                    r.read(one);
                    std::span<std::byte> odd[] = {take(7)};
                    r.read(odd);
                    size_t third = rest.size() / 3;
                    std::span<std::byte> scatter[] = {take(third), take(0), take(rest.size())};
                    r.read(scatter);
                    if (r.left() != 0) bad = cat("frame ", f, ": ", r.left(), " left after reading all");
                });
                if (!bad.empty()) return bad;
                if (t != type_of(f)) return cat("frame ", f, ": wrong type");
                if (auto at = first_mismatch(out, f); at != SIZE_MAX) return cat("frame ", f, ": byte ", at, " differs");
            }
            return "";
        },
        {p.server.get()});
    for (uint64_t f = 0; f < sizes.size(); ++f) p.client->send(type_of(f), patterned(sizes[f], f));
    EXPECT_EQ(receiver.get(kBulk, "recv_into every size"), "");
}

TEST_P(ChannelConformance, RecvIntoRefusesReadsPastThePayloadAndPayloadLeftUnread) {
    // Each on a channel of its own: after such an error the channel is not used again.
    auto past = open(1);
    auto unread = open(2);
    past.client->send(FrameType::data, patterned(100, 1));
    unread.client->send(FrameType::data, patterned(100, 2));
    std::vector<std::byte> buf(101);
    Task<std::string> r1(
        [&] {
            return error_of([&] {
                past.server->recv_into([&](FrameType, size_t, transport::PayloadReader& r) {
                    std::span<std::byte> all[] = {std::span(buf)};
                    r.read(all);
                });
            });
        },
        {past.server.get()});
    Task<std::string> r2(
        [&] {
            return error_of([&] {
                unread.server->recv_into([&](FrameType, size_t, transport::PayloadReader& r) {
                    std::span<std::byte> some[] = {std::span(buf).first(60)};
                    r.read(some);
                });
            });
        },
        {unread.server.get()});
    auto m1 = r1.get(kShort, "reading past the payload");
    auto m2 = r2.get(kShort, "leaving payload unread");
    EXPECT_TRUE(contains(m1, "past the payload")) << m1;
    EXPECT_TRUE(contains(m2, "40 payload bytes left unread")) << m2;
}

TEST_P(ChannelConformance, SendFilledFillsPieceByPieceAndEveryByteArrives) {
    auto p = open(1);
    const size_t max = p.client->max_frame_payload();
    const std::vector<size_t> sizes{0, 1, 4097, max / 2 + 3, max};
    Task<std::string> receiver(
        [&]() -> std::string {
            std::vector<std::byte> got;
            for (uint64_t f = 0; f < sizes.size(); ++f) {
                if (p.server->recv(got) != type_of(f)) return cat("frame ", f, ": wrong type");
                if (got.size() != sizes[f]) return cat("frame ", f, ": ", got.size(), " bytes");
                if (auto at = first_mismatch(got, f); at != SIZE_MAX) return cat("frame ", f, ": byte ", at, " differs");
            }
            return "";
        },
        {p.server.get()});
    for (uint64_t f = 0; f < sizes.size(); ++f) {
        std::vector<std::pair<size_t, size_t>> pieces;  // (offset, size) in call order
        p.client->send_filled(type_of(f), sizes[f], [&](std::span<std::byte> dst, size_t off) {
            pieces.emplace_back(off, dst.size());
            fill_pattern(dst, f, off);
        });
        // Consecutive pieces covering [0, length) exactly, none when empty.
        size_t at = 0;
        for (auto [off, n] : pieces) {
            EXPECT_EQ(off, at) << "frame " << f;
            EXPECT_GT(n, 0u) << "frame " << f;
            at = off + n;
        }
        EXPECT_EQ(at, sizes[f]) << "frame " << f;
        if (sizes[f] == 0) {
            EXPECT_TRUE(pieces.empty());
        } else if (!p.client->fills_in_place()) {
            // Without transport send memory the default fills one buffer (channel.hpp).
            EXPECT_EQ(pieces.size(), 1u) << "frame " << f;
        }
    }
    EXPECT_EQ(receiver.get(kBulk, "receiving filled frames"), "");
}

TEST_P(ChannelConformance, AFillerThatThrowsFirstSendsNothingAndTheChannelGoesOn) {
    auto p = open(1);
    auto msg = error_of([&] {
        p.client->send_filled(FrameType::data, 5000, [](std::span<std::byte>, size_t) { throw Error("filler gave up"); });
    });
    EXPECT_TRUE(contains(msg, "filler gave up")) << msg;
    p.client->send(FrameType::data, patterned(300, 1));
    p.client->send_filled(FrameType::control, 3, [](std::span<std::byte> dst, size_t off) { fill_pattern(dst, 2, off); });
    std::vector<std::byte> got;
    Task<std::string> r(
        [&]() -> std::string {
            // Frame 0 is the one sent after the failure: nothing of the failed one arrived.
            if (p.server->recv(got) != FrameType::data || got != patterned(300, 1)) return "first frame wrong";
            if (p.server->recv(got) != FrameType::control || got != patterned(3, 2)) return "second frame wrong";
            return "";
        },
        {p.server.get()});
    EXPECT_EQ(r.get(kShort, "recv after a failed fill"), "");
}

// --- shutdown and peers that go away ----------------------------------------

TEST_P(ChannelConformance, ShutdownUnblocksABlockedRecv) {
    auto p = open(1);
    std::atomic<bool> entered{false};
    Task<std::string> waiter(
        [&] {
            std::vector<std::byte> got;
            entered = true;
            try {
                p.server->recv(got);
            } catch (const LinkError& e) {
                return std::string("LinkError: ") + e.what();
            } catch (const std::exception& e) {
                return std::string("other error: ") + e.what();
            }
            return std::string("recv returned a frame nobody sent");
        },
        {});
    for (int i = 0; i < 500 && !entered; ++i) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(waiter.ready()) << "recv returned with nothing sent";
    auto t0 = std::chrono::steady_clock::now();
    p.server->shutdown();
    auto msg = waiter.get(Millis(5000), "recv after shutdown()");
    EXPECT_TRUE(contains(msg, "LinkError")) << msg;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_P(ChannelConformance, ShutdownFreesASenderStalledByAReceiverThatDoesNotRead) {
    auto p = open(1);
    const size_t frame = std::min<size_t>(p.client->max_frame_payload(), 1 << 20);
    const uint64_t limit = (512ull << 20) / frame;  // far beyond any backend's buffering
    std::atomic<uint64_t> sent{0};
    Task<std::string> sender(
        [&] {
            auto buf = patterned(frame, 9);
            try {
                for (uint64_t i = 0; i < limit; ++i, ++sent) p.client->send(FrameType::data, buf);
            } catch (const LinkError& e) {
                return std::string("LinkError: ") + e.what();
            } catch (const std::exception& e) {
                return std::string("other error: ") + e.what();
            }
            return std::string("sent everything: nothing stalled the sender");
        },
        {});
    // Stalled: no progress for 500 ms (bounded: 30 s).
    uint64_t last = UINT64_MAX;
    for (int i = 0; i < 60 && !sender.ready(); ++i) {
        std::this_thread::sleep_for(500ms);
        if (sent == last) break;
        last = sent;
    }
    ASSERT_FALSE(sender.ready()) << sender.get(0ms, "sender");
    p.client->shutdown();
    auto msg = sender.get(Millis(5000), "send after shutdown()");
    EXPECT_TRUE(contains(msg, "LinkError")) << msg << " (after " << sent << " frames)";
}

TEST_P(ChannelConformance, PeerThatClosesIsALinkErrorAfterItsFramesNotAHang) {
    auto p = open(1);
    for (uint64_t i = 0; i < 3; ++i) p.client->send(FrameType::data, patterned(1000 + i, i));
    p.client->send(FrameType::end, {});
    p.client.reset();  // closes: the frames before it still arrive, then an error
    Task<std::string> r(
        [&]() -> std::string {
            std::vector<std::byte> got;
            for (uint64_t i = 0; i < 3; ++i)
                if (p.server->recv(got) != FrameType::data || got != patterned(1000 + i, i))
                    return cat("frame ", i, " lost or damaged");
            if (p.server->recv(got) != FrameType::end) return "no end frame";
            try {
                p.server->recv(got);
            } catch (const LinkError& e) {
                return std::string("LinkError: ") + e.what();
            }
            return "a frame after the peer closed";
        },
        {p.server.get()});
    auto msg = r.get(kShort, "recv from a closed peer");
    EXPECT_TRUE(contains(msg, "LinkError: ")) << msg;
    EXPECT_TRUE(contains(msg, "channel 1")) << "the error must name the channel: " << msg;
}

TEST_P(ChannelConformance, SendingToAPeerThatClosedIsALinkErrorNotAHang) {
    auto p = open(1);
    p.server.reset();
    Task<std::string> s(
        [&] {
            auto buf = patterned(64 << 10, 4);
            try {
                for (int i = 0; i < 200000; ++i) {
                    p.client->send(FrameType::data, buf);
                    if (i % 64 == 63) std::this_thread::sleep_for(1ms);  // the error has time to arrive
                }
            } catch (const LinkError& e) {
                return std::string("LinkError: ") + e.what();
            }
            return std::string("200000 frames sent to nobody");
        },
        {});
    auto msg = s.get(kBulk, "send to a closed peer");
    EXPECT_TRUE(contains(msg, "LinkError: ")) << msg;
    EXPECT_TRUE(contains(msg, "channel 1")) << "the error must name the channel: " << msg;
}

// --- several channels --------------------------------------------------------

TEST_P(ChannelConformance, SeveralChannelsBetweenThePairStayApart) {
    constexpr uint32_t kChannels = 4;
    constexpr uint64_t kFrames = 64;
    std::map<uint32_t, Pair> ch;
    for (uint32_t id = 1; id <= kChannels; ++id) ch[id] = open(id, kChannels);
    for (auto& [id, p] : ch) {
        EXPECT_EQ(p.server->peer_hello().channel_id, id);
        EXPECT_EQ(p.client->peer_hello().channel_id, id);
    }
    const size_t size = std::min<size_t>(ch[1].client->max_frame_payload(), 200 << 10) - 13;
    std::vector<Channel*> all;
    for (auto& [id, p] : ch) all.insert(all.end(), {p.client.get(), p.server.get()});
    std::vector<Task<std::string>> tasks;
    for (auto& [id, pr] : ch) {
        Pair* p = &pr;
        uint32_t c = id;
        tasks.emplace_back(
            [p, c, size] {
                for (uint64_t i = 0; i < kFrames; ++i) p->client->send(FrameType::data, patterned(size, c * 1000 + i));
                p->client->send(FrameType::end, {});
                return std::string();
            },
            all);
        tasks.emplace_back(
            [p, c, size]() -> std::string {
                std::vector<std::byte> got;
                for (uint64_t i = 0; i < kFrames; ++i) {
                    p->server->recv(got);
                    if (got.size() != size || first_mismatch(got, c * 1000 + i) != SIZE_MAX)
                        return cat("channel ", c, ": frame ", i, " is not its own");
                }
                if (p->server->recv(got) != FrameType::end) return cat("channel ", c, ": no end");
                // And back: each server answers its own client with its number.
                p->server->send(FrameType::control, std::as_bytes(std::span(&c, 1)));
                return "";
            },
            all);
    }
    for (auto& t : tasks) EXPECT_EQ(t.get(kBulk, "channel traffic"), "");
    for (auto& [id, p] : ch) {
        std::vector<std::byte> got;
        Task<FrameType> r([&] { return p.client->recv(got); }, {p.client.get()});
        EXPECT_EQ(r.get(kShort, "answer"), FrameType::control);
        uint32_t n = 0;
        ASSERT_EQ(got.size(), sizeof n);
        std::memcpy(&n, got.data(), sizeof n);
        EXPECT_EQ(n, id);
    }
    // One channel closing leaves the others working.
    ch[2].client.reset();
    Task<std::string> gone(
        [&]() -> std::string {
            std::vector<std::byte> got;
            try {
                ch[2].server->recv(got);
            } catch (const LinkError& e) {
                return std::string("LinkError: ") + e.what();
            }
            return "a frame on a closed channel";
        },
        {ch[2].server.get()});
    auto msg = gone.get(kShort, "channel 2 after its peer closed");
    EXPECT_TRUE(contains(msg, "LinkError: ")) << msg;
    for (uint32_t id : {1u, 3u, 4u}) {
        ch[id].server->send(FrameType::data, patterned(10, id));
        std::vector<std::byte> got;
        Task<FrameType> r([&] { return ch[id].client->recv(got); }, {ch[id].client.get()});
        EXPECT_EQ(r.get(kShort, "a survivor"), FrameType::data);
        EXPECT_EQ(got, patterned(10, id)) << "channel " << id;
    }
}

// --- one-sided writes ----------------------------------------------------------

TEST_P(ChannelConformance, OneSidedWritesLandBeforeTheFrameSentAfterFlush) {
    auto p = open(1);
    if (!factory().one_sided) {
        EXPECT_EQ(p.client->one_sided(), nullptr) << "the factory says this backend has no one-sided writes";
        GTEST_SKIP() << factory().no_one_sided;
    }
    ASSERT_NE(p.client->one_sided(), nullptr);
    ASSERT_NE(p.server->one_sided(), nullptr);
    constexpr size_t kPage = 4096, kPages = 1024;
    std::vector<std::byte> dst(kPages * kPage), src = patterned(kPages * kPage, 77);
    transport::RemoteRegion region = p.server->one_sided()->expose(dst.data(), dst.size());
    // The receiver reads on meanwhile (dpdk applies writes from its stream while reading).
    Task<FrameType> barrier(
        [&] {
            std::vector<std::byte> got;
            return p.server->recv(got);
        },
        {p.server.get()});
    // Every third page, plus a contiguous run that may be merged into one write.
    std::vector<transport::RegionWrite> pieces;
    std::vector<bool> written(kPages);
    for (size_t pg = 0; pg < kPages; ++pg)
        if (pg % 3 == 0 || (pg >= 500 && pg < 600)) {
            pieces.push_back({src.data() + pg * kPage, kPage, pg * kPage});
            written[pg] = true;
        }
    p.client->one_sided()->write(region, pieces);
    p.client->one_sided()->flush();
    p.client->send(FrameType::control, {});
    EXPECT_EQ(barrier.get(kBulk, "the barrier frame"), FrameType::control);
    size_t bad = 0;
    for (size_t pg = 0; pg < kPages; ++pg) {
        std::span<const std::byte> page(dst.data() + pg * kPage, kPage);
        bool ok = written[pg] ? first_mismatch(page, 77, pg * kPage) == SIZE_MAX
                              : std::all_of(page.begin(), page.end(), [](std::byte b) { return b == std::byte{0}; });
        bad += !ok;
    }
    EXPECT_EQ(bad, 0u) << "pages wrong after flush and barrier";
    transport::RegionWrite past{src.data(), kPage, dst.size() - 100};
    auto msg = error_of([&] { p.client->one_sided()->write(region, std::span(&past, 1)); });
    EXPECT_TRUE(contains(msg, "runs past")) << msg;
}

}  // namespace rmig::test::conformance
