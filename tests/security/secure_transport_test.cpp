// security/ over real tcp loopback channels through security::listen/connect:
// PSK and X.509 sessions, and every way a peer can fail to authenticate.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <future>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/temp_dir.hpp"
#include "security/context.hpp"
#include "security/errors.hpp"
#include "security/secure_channel.hpp"
#include "security/secure_transport.hpp"
#include "tests/support/secure_opts.hpp"
#include "transport/channel.hpp"

using namespace rmig;
using namespace std::chrono_literals;
using namespace rmig::transport;
using security::AuthError;
using wire::FrameType;

namespace {

using Opts = test::SecureOpts;
using test::connect;
using test::listen;

std::shared_ptr<security::Context> psk(unsigned char v, bool encrypt = true, std::string id = "rmig") {
    security::Config c;
    c.psk.assign(32, v);
    c.psk_identity = std::move(id);
    c.encrypt = encrypt;
    return security::Context::create(c);
}

Opts opts(std::shared_ptr<security::Context> ctx, int timeout_ms = 4000) {
    Opts o;
    o.security = std::move(ctx);
    o.transport.handshake_timeout = Millis(timeout_ms);
    return o;
}

wire::Hello hello(wire::ChannelKind kind, const wire::SessionId& s, uint32_t id, uint32_t count = 2) {
    wire::Hello h;
    h.kind = kind;
    h.session = s;
    h.channel_id = id;
    h.channel_count = count;
    return h;
}

// Accepts the next channel in a thread; nullptr if none came (e.g. refused).
std::future<std::unique_ptr<Channel>> accept_one(Listener& l, int wait_ms = 6000) {
    return std::async(std::launch::async, [&l, wait_ms]() -> std::unique_ptr<Channel> {
        auto in = l.next(Millis(wait_ms));
        if (!in) return nullptr;
        wire::Hello r = in->hello();
        r.role = wire::Role::destination;
        return in->accept(r);
    });
}

std::vector<std::byte> bytes(const std::string& s) {
    return {reinterpret_cast<const std::byte*>(s.data()), reinterpret_cast<const std::byte*>(s.data()) + s.size()};
}

template <class E = Error> std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "(no error)";
}

void expect_round_trip(Channel& a, Channel& b, size_t n) {
    std::vector<std::byte> out(n), in;
    for (size_t i = 0; i < n; ++i) out[i] = std::byte(static_cast<unsigned char>(i * 7 + 3));
    a.send(FrameType::data, out);
    ASSERT_EQ(b.recv(in), FrameType::data);
    ASSERT_EQ(in, out);
    b.send(FrameType::control, bytes("{\"op\":\"ping\"}"));
    ASSERT_EQ(a.recv(in), FrameType::control);
    ASSERT_EQ(in, bytes("{\"op\":\"ping\"}"));
}

struct Session {
    std::unique_ptr<Listener> listener;
    wire::SessionId id = wire::random_session_id();
    std::unique_ptr<Channel> client_control, server_control;
};

// Opens listener + authenticated control channel.
Session open_session(std::shared_ptr<security::Context> server, std::shared_ptr<security::Context> client) {
    Session s;
    s.listener = listen("tcp:127.0.0.1:0", opts(std::move(server)));
    auto f = accept_one(*s.listener);
    s.client_control = connect(s.listener->address(), hello(wire::ChannelKind::control, s.id, 0), opts(client));
    s.server_control = f.get();
    return s;
}

}  // namespace

TEST(SecureTransport, PskSessionWithEncryptedDataChannels) {
    auto key = psk(1);
    Session s = open_session(key, key);
    ASSERT_TRUE(s.server_control);
    expect_round_trip(*s.client_control, *s.server_control, 1000);
    for (uint32_t c = 1; c <= 2; ++c) {
        auto f = accept_one(*s.listener);
        auto client = connect(s.listener->address(), hello(wire::ChannelKind::data, s.id, c), opts(key));
        auto server = f.get();
        ASSERT_TRUE(server);
        EXPECT_EQ(client->one_sided(), nullptr);
        expect_round_trip(*client, *server, 3 << 20);
        client->send(FrameType::end, {});
        std::vector<std::byte> in;
        EXPECT_EQ(server->recv(in), FrameType::end);
        EXPECT_TRUE(in.empty());
        // tcp has no registered buffers: sealing stays buffered (the default
        // path); its recv_into reads straight from the socket, so frames are
        // opened in the caller's payload.
        auto* sc = dynamic_cast<security::SecureChannel*>(client.get());
        auto* ss = dynamic_cast<security::SecureChannel*>(server.get());
        ASSERT_TRUE(sc && ss);
        EXPECT_EQ(sc->path_counts().sealed_in_place, 0u);
        EXPECT_GT(sc->path_counts().sealed_buffered, 0u);
        EXPECT_GT(ss->path_counts().opened_in_place, 0u);
        EXPECT_EQ(ss->path_counts().opened_buffered, 0u);
    }
}

TEST(SecureTransport, AuthenticationOnlyStillChecksTokens) {
    auto key = psk(1, false);
    Session s = open_session(key, key);
    auto f = accept_one(*s.listener);
    auto client = connect(s.listener->address(), hello(wire::ChannelKind::data, s.id, 1), opts(key));
    auto server = f.get();
    ASSERT_TRUE(server);
    expect_round_trip(*client, *server, 100000);
}

// A peer that fails authentication never reaches the listener's owner: the
// listener turns it away on its own (and says why in its log).
TEST(SecureTransport, WrongPskIsRefusedOnBothSides) {
    log::Capture cap;
    auto l = listen("tcp:127.0.0.1:0", opts(psk(1)));
    auto f = accept_one(*l, 1000);
    auto msg = error_of<AuthError>(
        [&] { connect(l->address(), hello(wire::ChannelKind::control, wire::random_session_id(), 0), opts(psk(2))); });
    EXPECT_NE(msg.find("control channel"), std::string::npos) << msg;
    EXPECT_EQ(f.get(), nullptr);
    EXPECT_NE(cap.wait_for("pre-shared key", 2s), "");
}

TEST(SecureTransport, WrongPskIdentityIsRefused) {
    auto l = listen("tcp:127.0.0.1:0", opts(psk(1)));
    auto f = accept_one(*l, 1000);
    EXPECT_THROW(connect(l->address(), hello(wire::ChannelKind::control, wire::random_session_id(), 0),
                         opts(psk(1, true, "someone-else"))),
                 AuthError);
    EXPECT_EQ(f.get(), nullptr);
}

TEST(SecureTransport, PlaintextAndSecurePeersRefuseEachOtherClearly) {
    auto secure = listen("tcp:127.0.0.1:0", opts(psk(1)));
    auto f = accept_one(*secure, 300);
    auto msg = error_of([&] {
        connect(secure->address(), hello(wire::ChannelKind::control, wire::random_session_id(), 0), Opts{});
    });
    EXPECT_NE(msg.find("requires authentication"), std::string::npos) << msg;
    EXPECT_EQ(f.get(), nullptr);

    auto plain = listen("tcp:127.0.0.1:0", Opts{});
    auto g = accept_one(*plain, 300);
    msg = error_of([&] {
        connect(plain->address(), hello(wire::ChannelKind::control, wire::random_session_id(), 0), opts(psk(1)));
    });
    EXPECT_NE(msg.find("without authentication"), std::string::npos) << msg;
    EXPECT_EQ(g.get(), nullptr);
}

TEST(SecureTransport, EncryptionSettingsMustAgree) {
    auto l = listen("tcp:127.0.0.1:0", opts(psk(1, true)));
    auto f = accept_one(*l, 300);
    auto msg = error_of([&] {
        connect(l->address(), hello(wire::ChannelKind::control, wire::random_session_id(), 0), opts(psk(1, false)));
    });
    EXPECT_NE(msg.find("--no-encrypt"), std::string::npos) << msg;
    EXPECT_EQ(f.get(), nullptr);
}

TEST(SecureTransport, DataChannelOfUnknownSessionIsRefusedAtTheHello) {
    auto key = psk(1);
    Session s = open_session(key, key);
    // A peer that offers authentication for a session nobody authenticated.
    wire::Hello h = hello(wire::ChannelKind::data, wire::random_session_id(), 1);
    h.caps = wire::kCapAuth | wire::kCapEncrypt;
    auto f = accept_one(*s.listener, 300);
    auto msg = error_of([&] { connect(s.listener->address(), h, Opts{}); });
    EXPECT_NE(msg.find("unknown session"), std::string::npos) << msg;
    EXPECT_EQ(f.get(), nullptr);
}

TEST(SecureTransport, DataChannelWithWrongTokenIsRefusedAndDeliversNothing) {
    log::Capture cap;
    auto key = psk(1);
    Session s = open_session(key, key);
    // The attacker knows the session id (hellos are plaintext) but not the secret.
    auto attacker = psk(9);
    security::SessionSecret guess;
    std::memset(guess.data(), 0x42, guess.size());
    auto lease = attacker->connected_sessions().add(s.id, guess);
    auto f = accept_one(*s.listener, 1000);
    auto msg = error_of<AuthError>(
        [&] { connect(s.listener->address(), hello(wire::ChannelKind::data, s.id, 1), opts(attacker)); });
    EXPECT_NE(msg.find("wrong channel token"), std::string::npos) << msg;
    EXPECT_EQ(f.get(), nullptr);  // the owner never saw it
    EXPECT_NE(cap.wait_for("wrong channel token", 2s), "");

    // The real channel 1 still gets in, and a second copy of it does not.
    auto g = accept_one(*s.listener);
    auto client = connect(s.listener->address(), hello(wire::ChannelKind::data, s.id, 1), opts(key));
    auto server = g.get();
    ASSERT_TRUE(server);
    expect_round_trip(*client, *server, 5000);
    auto h = accept_one(*s.listener);
    msg = error_of<AuthError>(
        [&] { connect(s.listener->address(), hello(wire::ChannelKind::data, s.id, 1), opts(key)); });
    EXPECT_NE(msg.find("already connected"), std::string::npos) << msg;
    EXPECT_THROW(h.get(), AuthError);
}

// A control channel whose connection was lost is reopened with an id of its
// own: it proves itself with the session's token (no second TLS handshake,
// whose secret would not match the data channels' keys) and is encrypted even
// when data channels are not.
TEST(SecureTransport, ReopenedControlChannelNeedsTheSessionsTokenAndIsAlwaysSealed) {
    auto key = psk(1, /*encrypt=*/false);
    Session s = open_session(key, key);
    ASSERT_TRUE(s.server_control);
    s.client_control->shutdown();  // the connection is gone; the session (its objects) lives on
    auto attacker = psk(9, false);
    security::SessionSecret guess;
    std::memset(guess.data(), 0x42, guess.size());
    auto lease = attacker->connected_sessions().add(s.id, guess);
    auto f = accept_one(*s.listener, 1000);
    auto msg = error_of<AuthError>([&] {
        connect(s.listener->address(), hello(wire::ChannelKind::control, s.id, 0x80000001), opts(attacker));
    });
    EXPECT_NE(msg.find("wrong channel token"), std::string::npos) << msg;
    EXPECT_EQ(f.get(), nullptr);

    auto g = accept_one(*s.listener);
    auto client = connect(s.listener->address(), hello(wire::ChannelKind::control, s.id, 0x80000001), opts(key));
    auto server = g.get();
    ASSERT_TRUE(server);
    EXPECT_NE(dynamic_cast<security::SecureChannel*>(client.get()), nullptr) << "control frames are always sealed";
    EXPECT_NE(dynamic_cast<security::SecureChannel*>(server.get()), nullptr);
    expect_round_trip(*client, *server, 2000);

    // Each id once; and a session nobody authenticated is refused at the hello.
    auto h = accept_one(*s.listener);
    msg = error_of<AuthError>([&] {
        connect(s.listener->address(), hello(wire::ChannelKind::control, s.id, 0x80000001), opts(key));
    });
    EXPECT_NE(msg.find("already connected"), std::string::npos) << msg;
    EXPECT_THROW(h.get(), AuthError);
    wire::Hello stranger = hello(wire::ChannelKind::control, wire::random_session_id(), 0x80000001);
    stranger.caps = wire::kCapAuth;
    auto i = accept_one(*s.listener, 300);
    msg = error_of([&] { connect(s.listener->address(), stranger, Opts{}); });
    EXPECT_NE(msg.find("unknown session"), std::string::npos) << msg;
    EXPECT_EQ(i.get(), nullptr);
}

TEST(SecureTransport, SilentPeerTimesOutTheHandshake) {
    log::Capture cap;
    auto l = listen("tcp:127.0.0.1:0", opts(psk(1), 500));
    auto f = accept_one(*l, 1500);
    wire::Hello h = hello(wire::ChannelKind::control, wire::random_session_id(), 0);
    h.caps = wire::kCapAuth | wire::kCapEncrypt;
    auto silent = connect(l->address(), h, Opts{});  // then never speaks TLS
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_NE(cap.wait_for("did not finish within 500 ms", 2s), "");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
    EXPECT_EQ(f.get(), nullptr);
}

// Mutual X.509: certificates made by the openssl tool for this test.
class X509Test : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string d = dir_.path();
        std::string script =
            "set -e; cd '" + d + "'\n"
            "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
            "-subj /CN=$1 -keyout $1.key -out $1.pem 2>/dev/null; }\n"
            "leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$1 "
            "-keyout $1.key -out $1.csr 2>/dev/null; openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key "
            "-CAcreateserial -days 2 -out $1.pem 2>/dev/null; }\n"
            "ca ca; ca rogue-ca; leaf src ca; leaf dst ca; leaf rogue rogue-ca\n";
        ASSERT_EQ(std::system(("bash -c \"$(cat <<'EOS'\n" + script + "EOS\n)\"").c_str()), 0);
    }
    std::shared_ptr<security::Context> ctx(const std::string& who, const std::string& ca = "ca",
                                           const std::string& peer = "") {
        security::Config c;
        c.peer_name = peer;
        c.mode = security::Config::Mode::x509;
        c.cert_file = dir_.path() + "/" + who + ".pem";
        c.key_file = dir_.path() + "/" + who + ".key";
        c.ca_file = dir_.path() + "/" + ca + ".pem";
        return security::Context::create(c);
    }
    TempDir dir_{"rmig-x509-test"};
};

TEST_F(X509Test, MutualCertificatesAuthenticate) {
    Session s = open_session(ctx("dst"), ctx("src"));
    ASSERT_TRUE(s.server_control);
    expect_round_trip(*s.client_control, *s.server_control, 10000);
}

TEST_F(X509Test, ClientCertificateFromAnotherCaIsRefused) {
    log::Capture cap;
    auto l = listen("tcp:127.0.0.1:0", opts(ctx("dst")));
    auto f = accept_one(*l, 1000);
    // The rogue client trusts the real CA, so only the receiver can object;
    // the connect still fails because it waits for the receiver's confirmation.
    auto msg = error_of<AuthError>([&] {
        connect(l->address(), hello(wire::ChannelKind::control, wire::random_session_id(), 0), opts(ctx("rogue")));
    });
    EXPECT_NE(msg.find("control channel"), std::string::npos) << msg;
    EXPECT_EQ(f.get(), nullptr);
    EXPECT_NE(cap.wait_for("certificate verify failed", 2s), "");
}

TEST_F(X509Test, ServerCertificateFromAnotherCaIsRefused) {
    auto l = listen("tcp:127.0.0.1:0", opts(ctx("rogue", "ca")));
    auto f = accept_one(*l, 1000);
    auto msg = error_of<AuthError>([&] {
        connect(l->address(), hello(wire::ChannelKind::control, wire::random_session_id(), 0), opts(ctx("src")));
    });
    EXPECT_NE(msg.find("certificate"), std::string::npos) << msg;
    EXPECT_EQ(f.get(), nullptr);
}

TEST_F(X509Test, PeerNamesAreCheckedWhenGiven) {
    log::Capture cap;
    {
        Session s = open_session(ctx("dst", "ca", "src"), ctx("src", "ca", "dst"));
        ASSERT_TRUE(s.server_control);
    }
    // The source expects "dst-2": the real receiver's certificate names "dst".
    auto l = listen("tcp:127.0.0.1:0", opts(ctx("dst")));
    auto f = accept_one(*l, 1000);
    auto msg = error_of<AuthError>([&] {
        connect(l->address(), hello(wire::ChannelKind::control, wire::random_session_id(), 0),
                opts(ctx("src", "ca", "dst-2")));
    });
    EXPECT_NE(msg.find("hostname mismatch"), std::string::npos) << msg;
    EXPECT_EQ(f.get(), nullptr);
    // The receiver expects "src"; a certificate for "dst" from the same CA is not enough.
    auto l2 = listen("tcp:127.0.0.1:0", opts(ctx("dst", "ca", "src")));
    auto g = accept_one(*l2, 1000);
    EXPECT_THROW(connect(l2->address(), hello(wire::ChannelKind::control, wire::random_session_id(), 0),
                         opts(ctx("dst"))),
                 AuthError);
    EXPECT_EQ(g.get(), nullptr);
    EXPECT_NE(cap.wait_for("hostname mismatch", 2s), "");
}

TEST_F(X509Test, KeyThatDoesNotMatchTheCertificateIsALoadError) {
    security::Config c;
    c.mode = security::Config::Mode::x509;
    c.cert_file = dir_.path() + "/src.pem";
    c.key_file = dir_.path() + "/dst.key";
    c.ca_file = dir_.path() + "/ca.pem";
    auto msg = error_of([&] { security::Context::create(c); });
    EXPECT_NE(msg.find("does it match certificate"), std::string::npos) << msg;
}
