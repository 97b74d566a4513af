// security/ over the rdma transport (Soft-RoCE in the test VM, or RDMA
// hardware): a PSK session whose encrypted frames are larger than a ring slot
// (and than the whole ring), so each sealed frame spans several slots; frames
// are sealed straight into the registered send slots and opened from the
// receive slots into the caller's buffer (SecureChannel::path_counts proves
// it), every byte verified; the buffered path still works; a frame rewritten
// in its registered slot fails authentication. Skips without an RDMA device.
#include <gtest/gtest.h>
#include <infiniband/verbs.h>

#include <cstdlib>
#include <cstring>
#include <future>

#include "common/error.hpp"
#include "security/context.hpp"
#include "security/secure_channel.hpp"
#include "security/secure_transport.hpp"
#include "tests/support/secure_opts.hpp"
#include "transport/channel.hpp"

using namespace rmig;
using namespace rmig::transport;

namespace {

using Opts = test::SecureOpts;
using test::connect;
using test::listen;

bool have_device() {
    int n = 0;
    ibv_device** list = ibv_get_device_list(&n);
    if (list) ibv_free_device_list(list);
    return n > 0;
}

std::string device_addr() {
    const char* a = std::getenv("RMIG_RDMA_ADDR");
    return a ? a : "10.11.12.1";
}

Opts rdma_opts(bool encrypt, bool in_place = true) {
    security::Config c;
    c.psk.assign(32, 0x17);
    c.encrypt = encrypt;
    c.seal_in_place = in_place;
    Opts o;
    o.security = security::Context::create(c);
    o.transport.tuning.set("rdma-slots", 8);
    o.transport.tuning.set("rdma-slot-size", 64 << 10);
    return o;
}

void run_session(bool encrypt) {
    Opts o = rdma_opts(encrypt);
    auto l = listen("rdma:" + device_addr() + ":0", o);
    wire::Hello h;
    h.session = wire::random_session_id();
    h.channel_count = 1;
    auto accept_next = [&] {
        return std::async(std::launch::async, [&]() -> std::unique_ptr<Channel> {
            auto in = l->next(Millis(10000));
            if (!in) throw Error("no rdma channel within 10 s");
            wire::Hello r = in->hello();
            r.role = wire::Role::destination;
            return in->accept(r);
        });
    };
    auto f = accept_next();
    h.kind = wire::ChannelKind::control;
    auto control = connect(l->address(), h, o);
    auto server_control = f.get();
    f = accept_next();
    h.kind = wire::ChannelKind::data;
    h.channel_id = 1;
    auto data = connect(l->address(), h, o);
    auto server_data = f.get();
    EXPECT_EQ(data->one_sided() == nullptr, encrypt);  // one-sided writes only without encryption

    constexpr size_t kFrame = 1 << 20;  // 16 ring slots' worth
    constexpr int kFrames = 32;
    auto sender = std::async(std::launch::async, [&] {
        std::vector<std::byte> buf(kFrame);
        for (int i = 0; i < kFrames; ++i) {
            for (size_t j = 0; j < kFrame; ++j) buf[j] = std::byte(static_cast<unsigned char>(j * 31 + i));
            data->send(wire::FrameType::data, buf);
        }
        data->send(wire::FrameType::end, {});
    });
    std::vector<std::byte> got;
    uint64_t total = 0;
    int frames = 0;
    for (;;) {
        auto t = server_data->recv(got);
        if (t == wire::FrameType::end) break;
        ASSERT_EQ(t, wire::FrameType::data);
        // Encrypted: one frame per send (gathered); plain: rdma's slot-sized pieces.
        if (encrypt) {
            ASSERT_EQ(got.size(), kFrame);
        }
        for (size_t j = 0; j < got.size(); ++j) {
            uint64_t at = total + j;
            auto want = std::byte(static_cast<unsigned char>((at % kFrame) * 31 + at / kFrame));
            ASSERT_EQ(got[j], want) << "byte " << at;
        }
        total += got.size();
        ++frames;
    }
    sender.get();
    EXPECT_EQ(total, uint64_t(kFrame) * kFrames);
    if (encrypt) {
        EXPECT_EQ(frames, kFrames);
    }
}

std::byte pattern(uint64_t frame, size_t i) {
    return std::byte(static_cast<unsigned char>(i * 31 + frame * 7 + (i >> 12)));
}

// 64 KiB slots carry 65504 payload bytes; a sealed frame is 24 bytes more than
// its plaintext. So: one slot exactly (65480), one byte over (65481: the tag's
// last byte alone in the next slot), the tag split over two slots (65490),
// twice the 512 KiB ring (1 MiB), and an odd size of many slots.
const std::vector<size_t> kSizes = {0, 1, 65479, 65480, 65481, 65490, 1 << 20, (3 << 20) + 17};

struct ChannelPair {
    std::unique_ptr<Listener> listener;
    std::unique_ptr<Channel> control, server_control, data, server_data;
};

ChannelPair open_pair(const Opts& o) {
    ChannelPair p;
    p.listener = listen("rdma:" + device_addr() + ":0", o);
    wire::Hello h;
    h.session = wire::random_session_id();
    h.channel_count = 1;
    auto accept_next = [&] {
        return std::async(std::launch::async, [&]() -> std::unique_ptr<Channel> {
            auto in = p.listener->next(Millis(10000));
            if (!in) throw Error("no rdma channel within 10 s");
            wire::Hello r = in->hello();
            r.role = wire::Role::destination;
            return in->accept(r);
        });
    };
    auto f = accept_next();
    h.kind = wire::ChannelKind::control;
    p.control = connect(p.listener->address(), h, o);
    p.server_control = f.get();
    f = accept_next();
    h.kind = wire::ChannelKind::data;
    h.channel_id = 1;
    p.data = connect(p.listener->address(), h, o);
    p.server_data = f.get();
    return p;
}

// Sends every size of kSizes `rounds` times, then END; verifies each frame whole.
void send_and_verify(Channel& from, Channel& to, int rounds) {
    auto sender = std::async(std::launch::async, [&] {
        std::vector<std::byte> buf;
        uint64_t f = 0;
        for (int r = 0; r < rounds; ++r)
            for (size_t n : kSizes) {
                buf.resize(n);
                for (size_t j = 0; j < n; ++j) buf[j] = pattern(f, j);
                from.send(f % 5 == 4 ? wire::FrameType::control : wire::FrameType::data, buf);
                ++f;
            }
        from.send(wire::FrameType::end, {});
    });
    std::vector<std::byte> got;
    uint64_t f = 0;
    for (int r = 0; r < rounds; ++r)
        for (size_t n : kSizes) {
            ASSERT_EQ(to.recv(got), f % 5 == 4 ? wire::FrameType::control : wire::FrameType::data) << "frame " << f;
            ASSERT_EQ(got.size(), n) << "frame " << f;
            for (size_t j = 0; j < n; ++j) ASSERT_EQ(got[j], pattern(f, j)) << "frame " << f << " byte " << j;
            ++f;
        }
    EXPECT_EQ(to.recv(got), wire::FrameType::end);
    EXPECT_TRUE(got.empty());
    sender.get();
}

security::SecureChannel& secure(Channel& c) {
    auto* s = dynamic_cast<security::SecureChannel*>(&c);
    if (!s) throw Error(cat(c.name(), " is not encrypted"));
    return *s;
}

// A real rdma channel whose send_filled rewrites one byte of one frame in the
// registered slot after the filler wrote it and before rdma checksums and
// posts it: an attacker who rewrites a frame and fixes its checksum.
class RewriteOneByte final : public Channel {
public:
    RewriteOneByte(std::unique_ptr<Channel> inner, uint64_t frame, size_t at)
        : inner_(std::move(inner)), frame_(frame), at_(at) {}
    void send(wire::FrameType t, std::span<const std::byte> p) override { inner_->send(t, p); }
    void send_filled(wire::FrameType t, size_t length, const PayloadFiller& fill) override {
        bool target = frames_++ == frame_;
        inner_->send_filled(t, length, [&](std::span<std::byte> dst, size_t off) {
            fill(dst, off);
            if (target && at_ >= off && at_ < off + dst.size()) dst[at_ - off] ^= std::byte{0x02};  // data (1) becomes control (3) at 0
        });
    }
    bool fills_in_place() const override { return inner_->fills_in_place(); }
    wire::FrameType recv(std::vector<std::byte>& p) override { return inner_->recv(p); }
    wire::FrameType recv_into(const PayloadConsumer& c) override { return inner_->recv_into(c); }
    void shutdown() override { inner_->shutdown(); }
    const wire::Hello& peer_hello() const override { return inner_->peer_hello(); }
    const std::string& name() const override { return inner_->name(); }
    size_t max_frame_payload() const override { return inner_->max_frame_payload(); }

private:
    std::unique_ptr<Channel> inner_;
    uint64_t frame_;
    size_t at_;
    uint64_t frames_ = 0;
};

}  // namespace

TEST(SecureRdma, SealsIntoAndOpensFromRegisteredSlotsEveryByteVerified) {
    if (!have_device()) GTEST_SKIP() << "no RDMA device; runs in the Soft-RoCE VM (tests/rdma)";
    auto p = open_pair(rdma_opts(true));
    send_and_verify(*p.data, *p.server_data, 3);
    send_and_verify(*p.server_data, *p.data, 1);  // and the other direction
    uint64_t frames = 3 * kSizes.size() + 1;
    auto sent = secure(*p.data).path_counts(), got = secure(*p.server_data).path_counts();
    EXPECT_EQ(sent.sealed_in_place, frames);
    EXPECT_EQ(sent.sealed_buffered, 0u);
    EXPECT_EQ(got.opened_in_place, frames);
    EXPECT_EQ(got.opened_buffered, 0u);
    EXPECT_EQ(got.sealed_in_place, kSizes.size() + 1);
    EXPECT_EQ(sent.opened_in_place, kSizes.size() + 1);
}

TEST(SecureRdma, BufferedPathStillWorksWhenAskedFor) {
    if (!have_device()) GTEST_SKIP() << "no RDMA device; runs in the Soft-RoCE VM (tests/rdma)";
    auto p = open_pair(rdma_opts(true, false));
    send_and_verify(*p.data, *p.server_data, 1);
    auto sent = secure(*p.data).path_counts(), got = secure(*p.server_data).path_counts();
    EXPECT_EQ(sent.sealed_in_place, 0u);
    EXPECT_EQ(sent.sealed_buffered, kSizes.size() + 1);
    EXPECT_EQ(got.opened_in_place, 0u);
    EXPECT_EQ(got.opened_buffered, kSizes.size() + 1);
}

TEST(SecureRdma, AFrameRewrittenInItsRegisteredSlotFailsAuthentication) {
    if (!have_device()) GTEST_SKIP() << "no RDMA device; runs in the Soft-RoCE VM (tests/rdma)";
    // Plain rdma channels (no handshake security) with SecureChannel put on
    // by hand, so the sender's slots can be rewritten between seal and post.
    constexpr size_t kFrame = 1 << 20;  // 17 slots sealed
    security::SessionSecret secret;
    secret.bytes.fill(0x5c);
    // Sealed offsets: the type byte; ciphertext in the first slot, in the
    // 9th slot (past the ring's end), in the last slot; the tag.
    for (size_t at : {size_t(0), size_t(100), size_t(8 * 65504 + 3), kFrame, kFrame + 8 + 15}) {
        Opts o;
        o.transport.tuning.set("rdma-slots", 8);
        o.transport.tuning.set("rdma-slot-size", 64 << 10);
        auto p = open_pair(o);
        wire::SessionId session = wire::random_session_id();
        security::SecureChannel tx(std::make_unique<RewriteOneByte>(std::move(p.data), 1, at), secret, session,
                                   true);
        security::SecureChannel rx(std::move(p.server_data), secret, session, false);
        auto sender = std::async(std::launch::async, [&] {
            std::vector<std::byte> buf(kFrame);
            for (uint64_t f = 0; f < 2; ++f) {
                for (size_t j = 0; j < kFrame; ++j) buf[j] = pattern(f, j);
                tx.send(wire::FrameType::data, buf);
            }
        });
        std::vector<std::byte> got;
        ASSERT_EQ(rx.recv(got), wire::FrameType::data);
        ASSERT_EQ(got.size(), kFrame);
        for (size_t j = 0; j < kFrame; ++j) ASSERT_EQ(got[j], pattern(0, j)) << "byte " << j;
        std::string err;
        try {
            rx.recv(got);
        } catch (const ProtocolError& e) {
            err = e.what();
        }
        EXPECT_NE(err.find("encrypted frame 1 failed authentication"), std::string::npos)
            << "sealed byte " << at << ": " << err;
        EXPECT_TRUE(got.empty()) << "no byte of a failed frame is handed out";
        EXPECT_EQ(tx.path_counts().sealed_in_place, 2u);
        if (sender.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
            ADD_FAILURE() << "sender still blocked: the receiver did not consume the tampered frame";
            tx.shutdown();
        }
        try {
            sender.get();
        } catch (const Error&) {
        }
    }
}

TEST(SecureRdma, EncryptedFramesLargerThanASlotArriveWhole) {
    if (!have_device()) GTEST_SKIP() << "no RDMA device; runs in the Soft-RoCE VM (tests/rdma)";
    run_session(true);
}

TEST(SecureRdma, AuthenticatedOnlyKeepsOneSidedWrites) {
    if (!have_device()) GTEST_SKIP() << "no RDMA device; runs in the Soft-RoCE VM (tests/rdma)";
    run_session(false);
}
