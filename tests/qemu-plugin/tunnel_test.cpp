// rmig tunnel-send and tunnel-receive over tcp loopback, with real UNIX
// sockets at both ends standing where the QEMUs would be: each source
// connection reaches its own destination connection in connect order, its
// bytes verified both ways; migrations follow one another on one path; a
// destination socket that never appears, or a destination that dies mid
// stream, fails that migration only -- the source's connection is closed
// (QEMU's migration fails, the guest stays) -- and the next one succeeds.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "common/temp_dir.hpp"
#include "qemu-plugin/tunnel_protocol.hpp"
#include "qemu-plugin/tunnel_receive.hpp"
#include "qemu-plugin/tunnel_send.hpp"

using namespace rmig;
using namespace rmig::qemu::tunnel;
using namespace std::chrono_literals;

namespace {

std::vector<uint8_t> payload(uint32_t seed, size_t size) {
    std::vector<uint8_t> v(size);
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<uint8_t>(rng() & 0x3f);  // compressible, not trivial
    return v;
}

std::vector<uint8_t> read_to_eof(int fd) {
    std::vector<uint8_t> out;
    uint8_t buf[65536];
    for (int i = 0; i < 1'000'000; ++i) {
        if (!net::wait_readable(fd, 15000ms)) throw Error("nothing to read for 15 s");
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) return out;  // EOF, or reset: the connection ended
        out.insert(out.end(), buf, buf + n);
    }
    return out;
}

// The destination "QEMU": accepts `count` connections on `path` in order;
// connection k must carry payload(k); answers each with its size and index.
struct DestQemu {
    std::string path;
    std::future<std::vector<std::vector<uint8_t>>> got;
    DestQemu(std::string p, uint32_t count, size_t die_after = 0) : path(std::move(p)) {
        auto listener = std::make_shared<UniqueFd>(net::unix_listen(path));
        got = std::async(std::launch::async, [listener, count, die_after] {
            std::vector<std::vector<uint8_t>> all;
            std::vector<UniqueFd> conns;
            for (uint32_t k = 0; k < count; ++k) {
                UniqueFd c;
                for (int i = 0; i < 150 && !c; ++i) c = net::accept_for(listener->get(), 100ms);
                if (!c) throw Error(cat("connection ", k + 1, " never came"));
                conns.push_back(std::move(c));
            }
            for (uint32_t k = 0; k < count; ++k) {
                int fd = conns[k].get();
                if (die_after) {
                    std::vector<uint8_t> some(die_after);
                    net::read_full(fd, some.data(), some.size());
                    conns.clear();  // the destination QEMU dies mid stream
                    return all;
                }
                auto data = read_to_eof(fd);
                std::string answer = cat("got ", data.size(), " on connection ", k + 1);
                net::write_full(fd, answer.data(), answer.size());
                all.push_back(std::move(data));
            }
            return all;
        });
    }
};

// The source "QEMU": opens `count` connections to `path` one after another,
// sends payload(k) on each and reads the answers.
std::vector<std::string> source_qemu(const std::string& path, uint32_t count, size_t size) {
    std::vector<UniqueFd> conns;
    for (uint32_t k = 0; k < count; ++k) conns.push_back(net::unix_connect(path, 3000ms));
    std::vector<std::future<std::string>> answers;
    for (uint32_t k = 0; k < count; ++k)
        answers.push_back(std::async(std::launch::async, [fd = conns[k].get(), k, size] {
            auto data = payload(k + 1, size);
            try {
                net::write_full(fd, data.data(), data.size());
            } catch (const Error&) {
                // The tunnel closed it: the answer (none) says so.
            }
            ::shutdown(fd, SHUT_WR);
            auto back = read_to_eof(fd);
            return std::string(back.begin(), back.end());
        }));
    std::vector<std::string> out;
    for (auto& a : answers) out.push_back(a.get());
    return out;
}

class Tunnel {
public:
    explicit Tunnel(uint32_t flows = 1, engine::CompressionMode compression = engine::CompressionMode::none)
        : src_("tunnel-src"), dst_("tunnel-dst") {
        ReceiveOptions r;
        r.listen_uri = "tcp:127.0.0.1:0";
        r.socket_dir = dst_.path();
        r.stall_timeout = 10s;
        r.socket_wait = 1500ms;
        std::promise<std::string> address;
        receive_ = std::jthread([this, r, &address] {
            serve_receive(r, stop_.get_token(), [&](const std::string& a) { address.set_value(a); },
                          [this](const SessionReport& s) { note(received_, s); });
        });
        auto f = address.get_future();
        if (f.wait_for(10s) != std::future_status::ready) throw Error("tunnel-receive did not listen");
        send_opts_.unix_paths = {src_path()};
        send_opts_.dest_uris = {f.get()};
        send_opts_.flows = flows;
        send_opts_.flow.compression = compression;
        send_opts_.stall_timeout = 10s;
        send_ = std::jthread([this] {
            serve_send(send_opts_, stop_.get_token(), [this](const SessionReport& s) { note(sent_, s); });
        });
        for (int i = 0; i < 100 && ::access(src_path().c_str(), F_OK) != 0; ++i) std::this_thread::sleep_for(20ms);
    }
    ~Tunnel() {
        stop_.request_stop();
        send_ = {};
        receive_ = {};
    }

    std::string src_path() const { return src_.path() + "/vm1.sock"; }
    std::string dst_path() const { return dst_.path() + "/vm1.sock"; }

    // Both sides' reports once `n` sessions ended on each.
    std::pair<std::vector<SessionReport>, std::vector<SessionReport>> reports(size_t n) {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, 20s, [&] { return sent_.size() >= n && received_.size() >= n; });
        return {sent_, received_};
    }

private:
    void note(std::vector<SessionReport>& where, const SessionReport& r) {
        std::lock_guard lock(mutex_);
        where.push_back(r);
        cv_.notify_all();
    }

    TempDir src_, dst_;
    std::stop_source stop_;
    SendOptions send_opts_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<SessionReport> sent_, received_;
    std::jthread receive_, send_;  // last: stopped first
};

void expect_delivered(DestQemu& dest, const std::vector<std::string>& answers, uint32_t count, size_t size) {
    ASSERT_EQ(dest.got.wait_for(20s), std::future_status::ready);
    auto got = dest.got.get();
    ASSERT_EQ(got.size(), count);
    for (uint32_t k = 0; k < count; ++k) {
        EXPECT_EQ(got[k], payload(k + 1, size)) << "destination connection " << k + 1
                                                << " got another source connection's bytes, or damaged ones";
        EXPECT_EQ(answers[k], cat("got ", size, " on connection ", k + 1)) << "the answer of connection " << k + 1;
    }
}

}  // namespace

TEST(TunnelNames, OnlyPlainFileNamesAreConnected) {
    EXPECT_EQ(checked_socket_name("vm-1.migrate_0.sock"), "vm-1.migrate_0.sock");
    for (const std::string& bad : std::vector<std::string>{"", ".", "..", "../etc/x", "a/b", "vm 1", std::string(101, 'a'), std::string("a\0b", 3)})
        EXPECT_THROW(checked_socket_name(bad), Error) << bad;
    EXPECT_EQ(base_name("/run/rmig/vm1.sock"), "vm1.sock");
    EXPECT_EQ(base_name("vm1.sock"), "vm1.sock");
    EXPECT_EQ(base_name("/run/rmig/"), "rmig");
}

TEST(Tunnel, CarriesEachConnectionToItsPeerInConnectOrder) {
    Tunnel t;
    constexpr uint32_t kConns = 3;
    constexpr size_t kSize = 4 << 20;
    DestQemu dest(t.dst_path(), kConns);
    auto answers = source_qemu(t.src_path(), kConns, kSize);
    expect_delivered(dest, answers, kConns, kSize);
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_TRUE(sent[0].ok) << sent[0].error;
    EXPECT_TRUE(received[0].ok) << received[0].error;
    EXPECT_EQ(sent[0].session, received[0].session);
    EXPECT_EQ(received[0].socket, t.dst_path());
    EXPECT_EQ(sent[0].streams.size(), kConns);
    for (auto& s : sent[0].streams) EXPECT_EQ(s.to_link, kSize);
}

TEST(Tunnel, StripedAndCompressedFlowsKeepEveryConnectionWhole) {
    Tunnel t(3, engine::CompressionMode::zstd);
    constexpr uint32_t kConns = 2;
    constexpr size_t kSize = 6 << 20;
    DestQemu dest(t.dst_path(), kConns);
    auto answers = source_qemu(t.src_path(), kConns, kSize);
    expect_delivered(dest, answers, kConns, kSize);
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_TRUE(sent[0].ok) << sent[0].error;
    uint64_t wire = 0;
    for (auto& s : sent[0].streams) wire += s.wire;
    EXPECT_LT(wire, uint64_t{kConns} * kSize) << "zstd on 6-bit data must shrink it";
}

TEST(Tunnel, MigrationsFollowOneAnotherOnOnePath) {
    Tunnel t;
    for (int run = 0; run < 2; ++run) {
        DestQemu dest(t.dst_path(), 2);
        auto answers = source_qemu(t.src_path(), 2, 1 << 20);
        expect_delivered(dest, answers, 2, 1 << 20);
    }
    auto [sent, received] = t.reports(2);
    ASSERT_EQ(sent.size(), 2u);
    ASSERT_EQ(received.size(), 2u);
    EXPECT_TRUE(sent[0].ok && sent[1].ok) << sent[0].error << sent[1].error;
    EXPECT_TRUE(received[0].ok && received[1].ok) << received[0].error << received[1].error;
    EXPECT_NE(sent[0].session, sent[1].session);
}

TEST(Tunnel, AMissingDestinationSocketFailsThatMigrationOnly) {
    Tunnel t;
    // Nobody listens at the destination: the source's connection is closed
    // without an answer (QEMU's migration fails there; its guest keeps running).
    auto answers = source_qemu(t.src_path(), 1, 1 << 20);
    EXPECT_EQ(answers[0], "");
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_FALSE(sent[0].ok);
    EXPECT_FALSE(received[0].ok);
    EXPECT_NE(received[0].error.find(t.dst_path()), std::string::npos) << received[0].error;
    // The service goes on: the next migration succeeds.
    DestQemu dest(t.dst_path(), 1);
    auto again = source_qemu(t.src_path(), 1, 1 << 20);
    expect_delivered(dest, again, 1, 1 << 20);
    auto [sent2, received2] = t.reports(2);
    ASSERT_EQ(sent2.size(), 2u);
    EXPECT_TRUE(sent2[1].ok) << sent2[1].error;
}

TEST(Tunnel, ADestinationThatDiesMidStreamClosesTheSource) {
    Tunnel t;
    DestQemu dest(t.dst_path(), 1, 256 << 10);
    auto answers = source_qemu(t.src_path(), 1, 16 << 20);
    EXPECT_EQ(answers[0], "") << "the source connection must end without an answer";
    auto [sent, received] = t.reports(1);
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_FALSE(sent[0].ok);
    EXPECT_FALSE(received[0].ok);
}
