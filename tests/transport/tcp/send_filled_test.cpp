// Channel::send_filled on tcp: the default path (fill one buffer, send it),
// which SecureChannel's buffered sealing and every transport without
// registered send memory use. Every byte verified.
#include <gtest/gtest.h>

#include <cstring>
#include <future>

#include "common/error.hpp"
#include "transport/channel.hpp"

using namespace rmig;
using namespace rmig::transport;
using wire::FrameType;

namespace {

std::byte pattern(uint64_t frame, size_t i) { return std::byte(static_cast<unsigned char>(i * 131 + frame * 17 + (i >> 9))); }

struct Pair {
    std::unique_ptr<Listener> listener = listen("tcp:127.0.0.1:0");
    std::unique_ptr<Channel> client, server;
    Pair() {
        wire::Hello h;
        h.kind = wire::ChannelKind::data;
        h.session = wire::random_session_id();
        h.channel_id = 1;
        h.channel_count = 1;
        auto f = std::async(std::launch::async, [&] {
            auto in = listener->next(Millis(5000));
            if (!in) throw Error("no connection within 5 s");
            wire::Hello r = in->hello();
            r.role = wire::Role::destination;
            return in->accept(r);
        });
        client = connect(listener->address(), h);
        server = f.get();
    }
};

}  // namespace

TEST(SendFilled, DefaultPathFillsOneBufferAndSendsItAsOneFrame) {
    Pair p;
    EXPECT_FALSE(p.client->fills_in_place());
    const size_t sizes[] = {1, 4096, 65536 + 7, size_t(3) << 20, wire::kMaxFramePayload};
    auto receiver = std::async(std::launch::async, [&] {
        std::vector<std::byte> got;
        for (uint64_t f = 0; f < std::size(sizes); ++f) {
            EXPECT_EQ(p.server->recv(got), f % 2 ? FrameType::control : FrameType::data);
            EXPECT_EQ(got.size(), sizes[f]);
            for (size_t i = 0; i < got.size(); ++i)
                if (got[i] != pattern(f, i)) {
                    ADD_FAILURE() << "frame " << f << " byte " << i;
                    return;
                }
        }
        EXPECT_EQ(p.server->recv(got), FrameType::end);
        EXPECT_TRUE(got.empty());
    });
    for (uint64_t f = 0; f < std::size(sizes); ++f) {
        std::vector<std::pair<size_t, size_t>> calls;
        p.client->send_filled(f % 2 ? FrameType::control : FrameType::data, sizes[f],
                              [&](std::span<std::byte> dst, size_t off) {
                                  calls.emplace_back(off, dst.size());
                                  for (size_t i = 0; i < dst.size(); ++i) dst[i] = pattern(f, off + i);
                              });
        ASSERT_EQ(calls.size(), 1u);  // one buffer for the whole payload
        EXPECT_EQ(calls[0], std::make_pair(size_t(0), sizes[f]));
    }
    int calls = 0;
    p.client->send_filled(FrameType::end, 0, [&](std::span<std::byte>, size_t) { ++calls; });
    EXPECT_EQ(calls, 0);  // nothing to fill
    receiver.get();
}

TEST(SendFilled, AThrowingFillerSendsNothingAndTheChannelGoesOn) {
    Pair p;
    EXPECT_THROW(p.client->send_filled(FrameType::data, 1000,
                                       [](std::span<std::byte>, size_t) { throw Error("filler gave up"); }),
                 Error);
    std::vector<std::byte> msg(100, std::byte{7});
    p.client->send(FrameType::data, msg);
    p.client->send_filled(FrameType::data, 3, [](std::span<std::byte> dst, size_t) {
        std::memcpy(dst.data(), "abc", 3);
    });
    std::vector<std::byte> got;
    EXPECT_EQ(p.server->recv(got), FrameType::data);  // frame 0 in order: nothing of the failed one arrived
    EXPECT_EQ(got, msg);
    EXPECT_EQ(p.server->recv(got), FrameType::data);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data()), got.size()), "abc");
}

TEST(SendFilled, ANestedSendFilledOnTheSameThreadGetsItsOwnBuffer) {
    Pair a, b;
    a.client->send_filled(FrameType::data, 5000, [&](std::span<std::byte> dst, size_t) {
        std::memset(dst.data(), 0x11, dst.size());
        b.client->send_filled(FrameType::data, 6000, [](std::span<std::byte> d, size_t) {
            std::memset(d.data(), 0x22, d.size());
        });
    });
    std::vector<std::byte> got;
    a.server->recv(got);
    EXPECT_EQ(got, std::vector<std::byte>(5000, std::byte{0x11}));
    b.server->recv(got);
    EXPECT_EQ(got, std::vector<std::byte>(6000, std::byte{0x22}));
}
