// An on-path attacker between two rmig ends over real tcp: a proxy that sees
// every byte and can rewrite frames with valid headers, sequence numbers and
// checksums (those are not secret). It must learn nothing from the bytes and
// every change it makes must end the migration with an error naming the channel.
#include <gtest/gtest.h>
#include <string.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "wire/byte_order.hpp"
#include "security/context.hpp"
#include "security/secure_transport.hpp"
#include "tests/support/secure_opts.hpp"
#include "transport/channel.hpp"

using namespace rmig;
using namespace rmig::transport;
using wire::FrameType;

namespace {

using Opts = test::SecureOpts;
using test::connect;
using test::listen;

struct Frame {
    FrameType type;
    std::vector<std::byte> payload;
};
// Sees frame `index` of connection `conn` (0 = control, 1 = data) going to the
// receiver; returns what to forward instead.
using Rewrite = std::function<std::vector<Frame>(int conn, uint64_t index, Frame f)>;

class Tap {
public:
    Tap(const std::string& upstream, Rewrite rewrite) : rewrite_(std::move(rewrite)) {
        listen_ = net::tcp_listen(net::HostPort{"127.0.0.1", 0});
        address_ = "tcp:127.0.0.1:" + std::to_string(net::local_port(listen_.get()));
        up_ = net::parse_host_port(upstream.substr(4));
        acceptor_ = std::thread([this] { run(); });
    }
    ~Tap() {
        stop_ = true;
        acceptor_.join();
        for (auto& fd : fds_) ::shutdown(fd.get(), SHUT_RDWR);
        for (auto& t : pumps_) t.join();
    }
    const std::string& address() const { return address_; }
    std::string captured() {
        std::lock_guard lk(mu_);
        return seen_;
    }

private:
    void run() {
        for (int conn = 0; conn < 2 && !stop_;) {
            UniqueFd down = net::accept_for(listen_.get(), Millis(100));
            if (!down) continue;
            UniqueFd up = net::tcp_connect(up_, Millis(2000));
            int d = down.get(), u = up.get();
            {
                std::lock_guard lk(mu_);
                fds_.push_back(std::move(down));
                fds_.push_back(std::move(up));
            }
            pumps_.emplace_back([this, d, u, conn] { frames(d, u, conn); });
            pumps_.emplace_back([this, d, u] { bytes(u, d); });
            ++conn;
        }
    }
    void record(const void* p, size_t n) {
        std::lock_guard lk(mu_);
        seen_.append(static_cast<const char*>(p), n);
    }
    // Receiver to sender: copied as is.
    void bytes(int from, int to) {
        char buf[65536];
        try {
            while (size_t n = net::read_some(from, buf, sizeof buf)) {
                record(buf, n);
                net::write_full(to, buf, n);
            }
        } catch (const Error&) {
        }
        ::shutdown(to, SHUT_WR);
    }
    // Sender to receiver: hello as is, then frame by frame through rewrite_.
    void frames(int from, int to, int conn) {
        try {
            std::byte hello[wire::kHelloSize];
            if (net::read_full(from, hello, sizeof hello) != sizeof hello) return;
            net::write_full(to, hello, sizeof hello);
            std::optional<wire::FrameEncoder> enc;
            for (uint64_t index = 0;; ++index) {
                wire::HeaderBytes h;
                if (net::read_full(from, h.data(), h.size()) != h.size()) break;
                uint32_t channel = wire::get_le<uint32_t>(&h[8]);
                if (!enc) enc.emplace(channel);
                Frame f{static_cast<FrameType>(h[4]), std::vector<std::byte>(wire::get_le<uint32_t>(&h[12]))};
                if (net::read_full(from, f.payload.data(), f.payload.size()) != f.payload.size()) break;
                record(h.data(), h.size());
                record(f.payload.data(), f.payload.size());
                for (auto& out : rewrite_(conn, index, std::move(f))) {
                    auto oh = enc->encode(out.type, out.payload);
                    net::write_full(to, oh.data(), oh.size());
                    net::write_full(to, out.payload.data(), out.payload.size());
                }
            }
        } catch (const Error&) {
        }
        ::shutdown(to, SHUT_WR);
    }

    Rewrite rewrite_;
    UniqueFd listen_;
    net::HostPort up_;
    std::string address_;
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::vector<UniqueFd> fds_;
    std::string seen_;
    std::thread acceptor_;
    std::vector<std::thread> pumps_;
};

std::shared_ptr<security::Context> key() {
    security::Config c;
    c.psk.assign(32, 0x5a);
    return security::Context::create(c);
}

Opts opts() {
    Opts o;
    o.security = key();
    o.transport.handshake_timeout = Millis(4000);
    return o;
}

const std::string kMarker = "GUEST-SECRET-PAGE-CONTENT;";

std::vector<std::byte> page_data(size_t n, int frame) {
    std::string s;
    while (s.size() < n) s += kMarker + std::to_string(frame);
    s.resize(n);
    return {reinterpret_cast<const std::byte*>(s.data()), reinterpret_cast<const std::byte*>(s.data()) + n};
}

struct Outcome {
    std::vector<std::vector<std::byte>> received;
    std::string error;
    std::string wire;
};

// Control + one data channel through the tap; the source sends `frames` data
// frames of `size` bytes; the destination reads until end or error.
Outcome migrate_through(Rewrite rewrite, int frames, size_t size) {
    Opts o = opts();
    auto l = listen("tcp:127.0.0.1:0", o);
    Tap tap(l->address(), std::move(rewrite));
    Outcome run;
    auto dest = std::async(std::launch::async, [&] {
        std::vector<std::unique_ptr<Channel>> chans;
        for (int i = 0; i < 2; ++i) {
            auto in = l->next(Millis(5000));
            if (!in) throw Error("no channel arrived");
            wire::Hello r = in->hello();
            r.role = wire::Role::destination;
            chans.push_back(in->accept(r));
        }
        std::vector<std::byte> msg;
        EXPECT_EQ(chans[0]->recv(msg), FrameType::control);
        chans[0]->send(FrameType::control, msg);
        try {
            for (;;) {
                std::vector<std::byte> p;
                if (chans[1]->recv(p) == FrameType::end) break;
                run.received.push_back(std::move(p));
            }
        } catch (const ProtocolError& e) {
            run.error = e.what();
        }
    });
    wire::Hello h;
    h.session = wire::random_session_id();
    h.kind = wire::ChannelKind::control;
    h.channel_count = 1;
    auto control = connect(tap.address(), h, o);
    h.kind = wire::ChannelKind::data;
    h.channel_id = 1;
    auto data = connect(tap.address(), h, o);
    std::string hello_msg = "{\"op\":\"prepare\",\"note\":\"" + kMarker + "\"}";
    control->send(FrameType::control, {reinterpret_cast<const std::byte*>(hello_msg.data()), hello_msg.size()});
    std::vector<std::byte> echo;
    EXPECT_EQ(control->recv(echo), FrameType::control);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(echo.data()), echo.size()), hello_msg);
    try {
        for (int i = 0; i < frames; ++i) data->send(FrameType::data, page_data(size, i));
        data->send(FrameType::end, {});
    } catch (const Error&) {
        // The receiver may hang up first once it saw the bad frame.
    }
    dest.get();
    run.wire = tap.captured();
    return run;
}

std::vector<Frame> keep(Frame f) {
    std::vector<Frame> v;
    v.push_back(std::move(f));
    return v;
}

}  // namespace

TEST(WireTap, EveryByteOnTheWireIsEncrypted) {
    Outcome run = migrate_through([](int, uint64_t, Frame f) { return keep(std::move(f)); }, 32, 256 << 10);
    EXPECT_EQ(run.error, "");
    ASSERT_EQ(run.received.size(), 32u);
    for (int i = 0; i < 32; ++i) ASSERT_EQ(run.received[i], page_data(256 << 10, i)) << "frame " << i;
    EXPECT_GT(run.wire.size(), size_t(32) * (256 << 10));
    // Not the page contents, not the control message, not even a piece of either.
    EXPECT_EQ(memmem(run.wire.data(), run.wire.size(), kMarker.data(), 12), nullptr);
    EXPECT_EQ(run.wire.find("prepare"), std::string::npos);
}

// The data channel's frames: 0 is the token, 1.. are sealed data frames.
TEST(WireTap, TamperedFrameEndsTheMigrationNamingTheChannel) {
    Outcome run = migrate_through(
        [](int conn, uint64_t i, Frame f) {
            if (conn == 1 && i == 3) f.payload[100] ^= std::byte{1};
            return keep(std::move(f));
        },
        6, 4096);
    EXPECT_EQ(run.received.size(), 2u);
    EXPECT_NE(run.error.find("channel 1"), std::string::npos) << run.error;
    EXPECT_NE(run.error.find("frame 2 failed authentication"), std::string::npos) << run.error;
}

TEST(WireTap, ReplayedFrameIsDetected) {
    Outcome run = migrate_through(
        [](int conn, uint64_t i, Frame f) {
            std::vector<Frame> out = keep(f);
            if (conn == 1 && i == 2) out.push_back(std::move(f));  // again, with a valid next seq
            return out;
        },
        6, 4096);
    EXPECT_EQ(run.received.size(), 2u);
    EXPECT_NE(run.error.find("frame 2 failed authentication"), std::string::npos) << run.error;
}

TEST(WireTap, ReorderedAndDroppedFramesAreDetected) {
    std::optional<Frame> held;
    Outcome run = migrate_through(
        [&](int conn, uint64_t i, Frame f) {
            std::vector<Frame> out;
            if (conn == 1 && i == 2) {
                held = std::move(f);
                return out;
            }
            out.push_back(std::move(f));
            if (conn == 1 && i == 3) out.push_back(std::move(*held));
            return out;
        },
        6, 4096);
    EXPECT_EQ(run.received.size(), 1u);
    EXPECT_NE(run.error.find("frame 1 failed authentication"), std::string::npos) << run.error;

    run = migrate_through(
        [](int conn, uint64_t i, Frame f) {
            if (conn == 1 && i == 4) return std::vector<Frame>{};
            return keep(std::move(f));
        },
        6, 4096);
    EXPECT_EQ(run.received.size(), 3u);
    EXPECT_NE(run.error.find("frame 3 failed authentication"), std::string::npos) << run.error;
}
