// AES-256-GCM frame sealing: round trips, nonces that never repeat, and every
// kind of tampering (bits, replay, reorder, drop, truncation, type, channel).
#include <gtest/gtest.h>

#include <string.h>

#include <cstring>
#include <functional>
#include <set>

#include "common/error.hpp"
#include "security/frame_cipher.hpp"

using namespace rmig;
using namespace rmig::security;
using wire::FrameType;

namespace {

SessionSecret secret_of(unsigned char v) {
    SessionSecret s;
    std::memset(s.data(), v, s.size());
    return s;
}

wire::SessionId session_of(unsigned char v) {
    wire::SessionId id;
    id.fill(std::byte{v});
    return id;
}

std::vector<std::byte> text(size_t n, unsigned seed) {
    std::vector<std::byte> b(n);
    for (size_t i = 0; i < n; ++i) b[i] = std::byte(static_cast<unsigned char>((i * 131 + seed * 7) >> 3));
    return b;
}

struct Pair {
    FrameSealer sealer;
    FrameOpener opener;
    explicit Pair(uint32_t channel = 3, unsigned char key = 1)
        : sealer(derive_frame_key(secret_of(key), session_of(9), channel, Direction::to_acceptor), channel),
          opener(derive_frame_key(secret_of(key), session_of(9), channel, Direction::to_acceptor), channel,
                 "test channel") {}
};

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ProtocolError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(FrameCipher, RoundTripsEveryFrameSizeAndType) {
    Pair p;
    std::vector<std::byte> sealed, plain;
    for (size_t n : {size_t(0), size_t(1), size_t(15), size_t(16), size_t(4095), size_t(1) << 20}) {
        for (FrameType t : {FrameType::data, FrameType::control, FrameType::end, FrameType::abort}) {
            auto in = text(n, unsigned(n));
            p.sealer.seal(t, in, sealed);
            ASSERT_EQ(sealed.size(), n + kSealOverhead);
            ASSERT_EQ(p.opener.open(sealed, plain), t);
            ASSERT_EQ(plain, in);
        }
    }
    EXPECT_EQ(p.sealer.counter(), p.opener.counter());
}

TEST(FrameCipher, CiphertextHidesThePlaintextAndNeverRepeats) {
    Pair p;
    auto in = text(4096, 1);
    std::set<std::string> seen;
    std::vector<std::byte> sealed;
    for (int i = 0; i < 1000; ++i) {
        p.sealer.seal(FrameType::data, in, sealed);
        // Same plaintext, fresh nonce each time: no two sealed frames alike.
        ASSERT_TRUE(seen.insert(std::string(reinterpret_cast<const char*>(sealed.data()), sealed.size())).second) << "frame " << i << " repeated an earlier one";
        ASSERT_EQ(::memmem(sealed.data(), sealed.size(), in.data(), 32), nullptr);
    }
}

TEST(FrameCipher, KeysDifferPerDirectionChannelAndSession) {
    auto s = secret_of(1);
    auto a = derive_frame_key(s, session_of(1), 1, Direction::to_acceptor);
    auto b = derive_frame_key(s, session_of(1), 1, Direction::to_connector);
    auto c = derive_frame_key(s, session_of(1), 2, Direction::to_acceptor);
    auto d = derive_frame_key(s, session_of(2), 1, Direction::to_acceptor);
    auto e = derive_frame_key(s, session_of(1), 1, Direction::to_acceptor);
    EXPECT_NE(a.key.bytes, b.key.bytes);
    EXPECT_NE(a.key.bytes, c.key.bytes);
    EXPECT_NE(a.key.bytes, d.key.bytes);
    EXPECT_EQ(a.key.bytes, e.key.bytes);
    EXPECT_EQ(a.salt.bytes, e.salt.bytes);
}

TEST(FrameCipher, AnyFlippedBitFailsAuthentication) {
    auto in = text(300, 2);
    std::vector<std::byte> sealed, plain;
    // Flip a bit in the length prefix, the ciphertext and the tag.
    for (size_t pos : {size_t(0), size_t(4), size_t(8), size_t(150), size_t(307), size_t(308), size_t(323)}) {
        Pair p;
        p.sealer.seal(FrameType::data, in, sealed);
        sealed[pos] ^= std::byte{0x10};
        auto msg = error_of([&] { p.opener.open(sealed, plain); });
        EXPECT_NE(msg.find("test channel"), std::string::npos) << "byte " << pos << ": " << msg;
        EXPECT_TRUE(plain.empty());
    }
}

TEST(FrameCipher, ReplayedReorderedAndDroppedFramesFail) {
    std::vector<std::byte> f0, f1, f2, plain;
    {
        Pair p;
        p.sealer.seal(FrameType::data, text(100, 0), f0);
        p.sealer.seal(FrameType::data, text(100, 1), f1);
        p.sealer.seal(FrameType::data, text(100, 2), f2);
        p.opener.open(f0, plain);
        auto msg = error_of([&] { p.opener.open(f0, plain); });  // replay
        EXPECT_NE(msg.find("frame 1 failed authentication"), std::string::npos) << msg;
    }
    {
        Pair p;
        p.sealer.seal(FrameType::data, text(100, 0), f0);
        p.sealer.seal(FrameType::data, text(100, 1), f1);
        EXPECT_NE(error_of([&] { p.opener.open(f1, plain); }), "");  // reorder / drop
    }
}

TEST(FrameCipher, TypeChannelKeyAndTruncationAreBound) {
    std::vector<std::byte> sealed, plain;
    {
        Pair p;
        p.sealer.seal(FrameType::data, text(64, 0), sealed);
        sealed[0] = static_cast<std::byte>(FrameType::control);  // relabelled: the AAD holds the type
        EXPECT_NE(error_of([&] { p.opener.open(sealed, plain); }), "");
    }
    {
        Pair a(1), b(2);
        a.sealer.seal(FrameType::data, text(64, 0), sealed);
        EXPECT_NE(error_of([&] { b.opener.open(sealed, plain); }), "");
    }
    {
        Pair a(1, 1), b(1, 2);
        a.sealer.seal(FrameType::data, text(64, 0), sealed);
        EXPECT_NE(error_of([&] { b.opener.open(sealed, plain); }), "");
    }
    {
        Pair p;
        p.sealer.seal(FrameType::data, text(64, 0), sealed);
        sealed.resize(sealed.size() - 1);
        auto msg = error_of([&] { p.opener.open(sealed, plain); });
        EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
        EXPECT_NE(error_of([&] { p.opener.open(std::span(sealed).first(3), plain); }), "");
    }
}

// The streaming forms (sealing into a transport's slots, opening piece by
// piece in place) produce and accept exactly what seal()/open() do.
namespace {

std::vector<std::byte> seal_in_pieces(FrameSealer& s, FrameType type, std::span<const std::byte> plain,
                                      size_t piece) {
    size_t total = s.begin(type, plain);
    std::vector<std::byte> out(total, std::byte{0xee});
    for (size_t at = 0; at < total; at += piece) s.write(std::span(out).subspan(at, std::min(piece, total - at)), at);
    return out;
}

FrameType open_in_pieces(FrameOpener& o, std::span<const std::byte> sealed, size_t piece,
                         std::vector<std::byte>& plain) {
    size_t len = o.begin(sealed.first(kSealPrefix));
    plain.assign(sealed.begin() + kSealPrefix, sealed.begin() + kSealPrefix + len);
    for (size_t at = 0; at < len; at += piece)
        o.decrypt_in_place(std::span(plain).subspan(at, std::min(piece, len - at)));
    return o.finish(sealed.subspan(kSealPrefix + len));
}

}  // namespace

TEST(FrameCipher, StreamingSealMatchesSealForEveryPieceSize) {
    for (size_t n : {size_t(0), size_t(1), size_t(15), size_t(16), size_t(4099), size_t(65536), size_t(1) << 20}) {
        for (size_t piece : {size_t(1), size_t(7), size_t(8), size_t(24), size_t(4096), size_t(65504), n + 24}) {
            if (n >= 65536 && piece < 4096) continue;  // byte-sized pieces of a MiB add nothing but time
            Pair whole, streamed;
            auto plain = text(n, unsigned(piece));
            std::vector<std::byte> a, got;
            whole.sealer.seal(FrameType::data, plain, a);
            auto b = seal_in_pieces(streamed.sealer, FrameType::data, plain, piece);
            ASSERT_EQ(a, b) << n << " bytes in pieces of " << piece;
            EXPECT_EQ(streamed.sealer.counter(), 1u);
            ASSERT_EQ(open_in_pieces(whole.opener, b, piece, got), FrameType::data);
            EXPECT_EQ(got, plain);
            EXPECT_EQ(whole.opener.counter(), 1u);
        }
    }
}

TEST(FrameCipher, StreamingOpenRejectsEveryTamperedRegion) {
    auto plain = text(10000, 5);
    for (size_t at : {size_t(0), size_t(1), size_t(8), size_t(5000), size_t(10007), size_t(10008), size_t(10023)}) {
        Pair p;
        std::vector<std::byte> got;
        auto sealed = seal_in_pieces(p.sealer, FrameType::control, plain, 4096);
        sealed[at] ^= std::byte{0x02};
        auto err = error_of([&] { open_in_pieces(p.opener, sealed, 4096, got); });
        EXPECT_NE(err, "") << "flipped byte " << at;
        EXPECT_EQ(p.opener.counter(), 0u);
    }
    // A different length in the prefix is authenticated too (it is in the AAD).
    Pair p;
    auto sealed = seal_in_pieces(p.sealer, FrameType::data, plain, 4096);
    sealed[4] = std::byte{0x00};  // claims 10000 & ~0xff bytes
    std::vector<std::byte> shorter = sealed;  // 16 ciphertext bytes fewer, the tag kept
    shorter.erase(shorter.begin() + kSealPrefix + 9984, shorter.end() - kTagSize);
    std::vector<std::byte> got;
    EXPECT_NE(error_of([&] { open_in_pieces(p.opener, shorter, 4096, got); }).find("failed authentication"),
              std::string::npos);
}

TEST(FrameCipher, StreamingSealRefusesOutOfOrderWritesAndNeverReusesACounter) {
    Pair p;
    auto plain = text(1000, 1);
    size_t total = p.sealer.begin(FrameType::data, plain);
    std::vector<std::byte> out(total);
    EXPECT_THROW(p.sealer.write(std::span(out).subspan(8, 100), 8), Error);  // skipped the prefix
    // The abandoned frame spent counter 0: the next frame is number 1.
    EXPECT_EQ(p.sealer.counter(), 1u);
    std::vector<std::byte> a;
    p.sealer.seal(FrameType::data, plain, a);
    Pair q;
    std::vector<std::byte> b;
    q.sealer.seal(FrameType::data, plain, b);
    EXPECT_NE(a, b);  // different nonce, different ciphertext
    EXPECT_THROW(p.sealer.begin(FrameType::data, std::span<const std::byte>(plain.data(), kMaxSealedPlaintext + 1)),
                 Error);
}
