// Channel::send_filled on tcp: the default path (fill one buffer, send it),
// which SecureChannel's buffered sealing and every transport without
// registered send memory use. That it fills one piece per frame, sends every
// byte and sends nothing when the filler throws is the conformance suite's
// (tests/transport/conformance); here, what only the default's per-thread
// buffer can get wrong.
#include <gtest/gtest.h>

#include <cstring>

#include "tests/support/channel_pair.hpp"
#include "transport/channel.hpp"

using namespace rmig;
using wire::FrameType;

TEST(SendFilled, ANestedSendFilledOnTheSameThreadGetsItsOwnBuffer) {
    test::ChannelPair a, b;
    a.src->send_filled(FrameType::data, 5000, [&](std::span<std::byte> dst, size_t) {
        std::memset(dst.data(), 0x11, dst.size());
        b.src->send_filled(FrameType::data, 6000, [](std::span<std::byte> d, size_t) {
            std::memset(d.data(), 0x22, d.size());
        });
    });
    std::vector<std::byte> got;
    a.dst->recv(got);
    EXPECT_EQ(got, std::vector<std::byte>(5000, std::byte{0x11}));
    b.dst->recv(got);
    EXPECT_EQ(got, std::vector<std::byte>(6000, std::byte{0x22}));
}
