// Receiving a frame's payload straight into place (Channel::recv_into), as
// the memory-mode destination does with page batches: over a real tcp
// loopback channel (readv into the pieces, checksum streamed) and through the
// copying default that other backends use.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <future>

#include "common/error.hpp"
#include "wire/checksum.hpp"
#include "transport/channel.hpp"
#include "tests/support/channel_pair.hpp"

using namespace rmig;
using namespace std::chrono_literals;
using Pieces = std::span<const std::span<std::byte>>;

namespace {

using Pair = test::ChannelPair;

std::vector<std::byte> pattern(size_t n, unsigned salt) {
    std::vector<std::byte> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 7 + salt) & 0xff);
    return v;
}

// The copying default, for checking the base class against tcp's override.
class Copying final : public transport::Channel {
public:
    explicit Copying(transport::Channel& inner) : in_(inner) {}
    void send(wire::FrameType t, std::span<const std::byte> p) override { in_.send(t, p); }
    wire::FrameType recv(std::vector<std::byte>& p) override { return in_.recv(p); }
    void shutdown() override { in_.shutdown(); }
    const wire::Hello& peer_hello() const override { return in_.peer_hello(); }
    const std::string& name() const override { return in_.name(); }

private:
    transport::Channel& in_;
};

void scatter_roundtrip(transport::Channel& tx, transport::Channel& rx) {
    // 3 MiB: more than the socket buffers, so readv returns partial reads.
    const auto frame = pattern(3u << 20, 3);
    auto sent = std::async(std::launch::async, [&] { tx.send(wire::FrameType::data, frame); });
    std::vector<std::byte> a(100), b(0), c(1u << 20), d((2u << 20) - 100);
    auto type = rx.recv_into([&](wire::FrameType t, size_t len, transport::PayloadReader& r) {
        EXPECT_EQ(t, wire::FrameType::data);
        EXPECT_EQ(len, frame.size());
        r.read(Pieces(std::array{std::span(a)}));
        EXPECT_EQ(r.left(), frame.size() - a.size());
        r.read(Pieces(std::array{std::span(b), std::span(c), std::span(d)}));
        EXPECT_EQ(r.left(), 0u);
    });
    sent.get();
    EXPECT_EQ(type, wire::FrameType::data);
    std::vector<std::byte> joined;
    for (auto* v : {&a, &b, &c, &d}) joined.insert(joined.end(), v->begin(), v->end());
    EXPECT_TRUE(joined == frame);
}

}  // namespace

TEST(RecvInto, StreamingChecksumEqualsTheOneShot) {
    const auto data = pattern(100000, 1);
    wire::StreamingChecksum s(42);
    s.update(std::span(data).first(1));
    s.update(std::span(data).subspan(1, 4095));
    s.update(std::span(data).subspan(4096));
    EXPECT_EQ(s.digest(), wire::checksum(data, 42));
}

TEST(RecvInto, TcpScattersAPayloadIntoPieces) {
    Pair p;
    scatter_roundtrip(*p.src, *p.dst);
    // The channel is still in step: the next frame arrives normally.
    auto msg = pattern(10, 9);
    p.src->send(wire::FrameType::control, msg);
    std::vector<std::byte> got;
    EXPECT_EQ(p.dst->recv(got), wire::FrameType::control);
    EXPECT_EQ(got, msg);
}

TEST(RecvInto, TheCopyingDefaultScattersToo) {
    Pair p;
    Copying rx(*p.dst);
    scatter_roundtrip(*p.src, rx);
}

TEST(RecvInto, ReadingPastThePayloadOrLeavingSomeIsAnError) {
    Pair p;
    p.src->send(wire::FrameType::data, pattern(64, 0));
    p.src->send(wire::FrameType::data, pattern(64, 0));
    std::vector<std::byte> big(65), small(63);
    EXPECT_THROW(p.dst->recv_into([&](wire::FrameType, size_t, transport::PayloadReader& r) {
        r.read(Pieces(std::array{std::span(big)}));
    }), ProtocolError);
    Pair q;
    q.src->send(wire::FrameType::data, pattern(64, 0));
    EXPECT_THROW(q.dst->recv_into([&](wire::FrameType, size_t, transport::PayloadReader& r) {
        r.read(Pieces(std::array{std::span(small)}));
    }), ProtocolError);
}
