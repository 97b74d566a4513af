#include "wire/handshake.hpp"

#include <gtest/gtest.h>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::wire;

namespace {

Hello sample() {
    Hello h;
    h.role = Role::source;
    h.kind = ChannelKind::data;
    h.caps = kCapCompress;
    h.channel_id = 2;
    h.channel_count = 5;
    h.session = random_session_id();
    return h;
}

void expect_refused(const HelloBytes& b, bool reply, const char* needle) {
    try {
        decode_hello(b, reply, "10.0.0.9:7070");
        FAIL() << "accepted a bad hello";
    } catch (const ProtocolError& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("10.0.0.9:7070"), std::string::npos) << m;
        EXPECT_NE(m.find(needle), std::string::npos) << m;
    }
}

}  // namespace

TEST(Handshake, RoundTrips) {
    Hello h = sample();
    Hello d = decode_hello(encode_hello(h, false), false, "peer");
    EXPECT_EQ(d.version, kProtocolVersion);
    EXPECT_EQ(d.role, h.role);
    EXPECT_EQ(d.kind, h.kind);
    EXPECT_EQ(d.caps, h.caps);
    EXPECT_EQ(d.channel_id, 2u);
    EXPECT_EQ(d.channel_count, 5u);
    EXPECT_EQ(d.session, h.session);
    EXPECT_EQ(d.status, HelloStatus::ok);
}

TEST(Handshake, ReplyCarriesStatus) {
    Hello h = sample();
    h.status = HelloStatus::unknown_session;
    Hello d = decode_hello(encode_hello(h, true), true, "peer");
    EXPECT_EQ(d.status, HelloStatus::unknown_session);
}

TEST(Handshake, HelloIsNotAReply) {
    expect_refused(encode_hello(sample(), false), true, "bad magic");
    expect_refused(encode_hello(sample(), true), false, "bad magic");
}

TEST(Handshake, CorruptionFailsChecksum) {
    auto b = encode_hello(sample(), false);
    b[21] ^= std::byte{0x10};
    expect_refused(b, false, "checksum mismatch");
}

TEST(Handshake, UnknownRoleAndKindAreRefused) {
    Hello h = sample();
    h.role = static_cast<Role>(7);
    expect_refused(encode_hello(h, false), false, "unknown role 7");
    h = sample();
    h.kind = static_cast<ChannelKind>(0);
    expect_refused(encode_hello(h, false), false, "unknown channel kind 0");
}

TEST(Handshake, ChannelIdsMustMatchKind) {
    Hello h = sample();
    h.kind = ChannelKind::control;
    expect_refused(encode_hello(h, false), false, "control channel with id 2");
    h.channel_id = kReopenedControlIds + 3;  // a reopened control channel
    EXPECT_EQ(decode_hello(encode_hello(h, false), false, "peer").channel_id, kReopenedControlIds + 3);
    h = sample();
    h.channel_id = 0;
    expect_refused(encode_hello(h, false), false, "data channel with id 0");
}

TEST(Handshake, OtherVersionDecodesButIsRefusedByCheck) {
    Hello h = sample();
    h.version = 2;
    Hello d = decode_hello(encode_hello(h, false), false, "peer");
    EXPECT_EQ(d.version, 2);
    try {
        check_version(d, "peer");
        FAIL();
    } catch (const ProtocolError& e) {
        EXPECT_NE(std::string(e.what()).find("version 2, this build speaks version 1"),
                  std::string::npos);
    }
    EXPECT_NO_THROW(check_version(sample(), "peer"));
}

TEST(Handshake, TruncatedOrGarbageInputIsRefused) {
    HelloBytes zeros{};
    expect_refused(zeros, false, "bad magic");
}

TEST(Handshake, SessionIdsAreRandomAndPrintable) {
    auto a = random_session_id(), b = random_session_id();
    EXPECT_NE(a, b);
    EXPECT_EQ(to_hex(a).size(), 32u);
}

TEST(CompactHandshake, RoundTripsIn48Bytes) {
    Hello h = sample();
    auto b = encode_hello_compact(h, false);
    static_assert(sizeof(b) == 48);
    Hello d = decode_hello_compact(b, false, "peer");
    EXPECT_EQ(d.session, h.session);
    EXPECT_EQ(d.channel_id, 2u);
    EXPECT_EQ(d.caps, h.caps);
    h.status = HelloStatus::busy;
    EXPECT_EQ(decode_hello_compact(encode_hello_compact(h, true), true, "peer").status, HelloStatus::busy);
}

TEST(CompactHandshake, BadPrivateDataIsRefused) {
    auto b = encode_hello_compact(sample(), false);
    auto expect = [](std::span<const std::byte> bytes, bool reply, const char* needle) {
        try {
            decode_hello_compact(bytes, reply, "10.0.0.9");
            ADD_FAILURE() << "accepted";
        } catch (const ProtocolError& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    expect(std::span(b).first(20), false, "20 bytes of private data");
    expect(b, true, "bad magic");
    auto c = b;
    c[30] ^= std::byte{1};
    expect(c, false, "checksum mismatch");
    std::array<std::byte, 56> zeros{};
    expect(zeros, false, "bad magic");
}
