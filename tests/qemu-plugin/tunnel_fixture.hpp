// A tunnel-send / tunnel-receive pair in this process, with real UNIX
// sockets at both ends standing where the QEMUs would be, over any
// transport (tunnel_test.cpp: tcp; tunnel_dpdk_test.cpp: memif).
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "common/temp_dir.hpp"
#include "qemu-plugin/tunnel_protocol.hpp"
#include "qemu-plugin/tunnel_receive.hpp"
#include "qemu-plugin/tunnel_send.hpp"

namespace rmig::test::tunnel {

using namespace rmig::qemu::tunnel;
using namespace std::chrono_literals;

inline std::vector<uint8_t> payload(uint32_t seed, size_t size) {
    std::vector<uint8_t> v(size);
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<uint8_t>(rng() & 0x3f);  // compressible, not trivial
    return v;
}

inline std::vector<uint8_t> read_to_eof(int fd) {
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
inline std::vector<std::string> source_qemu(const std::string& path, uint32_t count, size_t size, uint32_t base = 0) {
    std::vector<UniqueFd> conns;
    for (uint32_t k = 0; k < count; ++k) conns.push_back(net::unix_connect(path, 3000ms));
    std::vector<std::future<std::string>> answers;
    for (uint32_t k = 0; k < count; ++k)
        answers.push_back(std::async(std::launch::async, [fd = conns[k].get(), k, size, base] {
            auto data = payload(base + k + 1, size);
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

// Where tunnel-receive listens and how tunnel-send reaches it.
struct TunnelLink {
    std::string listen_uri = "tcp:127.0.0.1:0";
    std::string connect_uri;  // empty: the listener's bound address
    transport::Options transport;
};

class Tunnel {
public:
    explicit Tunnel(uint32_t flows = 1, engine::CompressionMode compression = engine::CompressionMode::none,
                    std::vector<std::string> names = {"vm1.sock"}, TunnelLink link = {})
        : src_("tunnel-src"), dst_("tunnel-dst"), names_(std::move(names)) {
        ReceiveOptions r;
        r.listen_uri = link.listen_uri;
        r.transport = link.transport;
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
        for (auto& n : names_) send_opts_.unix_paths.push_back(src_path(n));
        std::string bound = f.get();
        send_opts_.dest_uris = {link.connect_uri.empty() ? bound : link.connect_uri};
        send_opts_.transport = link.transport;
        send_opts_.flows = flows;
        send_opts_.flow.compression = compression;
        send_opts_.stall_timeout = 10s;
        send_ = std::jthread([this] {
            serve_send(send_opts_, stop_.get_token(), [this](const SessionReport& s) { note(sent_, s); });
        });
        for (auto& n : names_)
            for (int i = 0; i < 100 && ::access(src_path(n).c_str(), F_OK) != 0; ++i) std::this_thread::sleep_for(20ms);
    }
    ~Tunnel() {
        stop_.request_stop();
        send_ = {};
        receive_ = {};
    }

    std::string src_path(const std::string& name = "vm1.sock") const { return src_.path() + "/" + name; }
    std::string dst_path(const std::string& name = "vm1.sock") const { return dst_.path() + "/" + name; }

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
    std::vector<std::string> names_;
    std::stop_source stop_;
    SendOptions send_opts_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<SessionReport> sent_, received_;
    std::jthread receive_, send_;  // last: stopped first
};

inline void expect_delivered(DestQemu& dest, const std::vector<std::string>& answers, uint32_t count, size_t size,
                      uint32_t base = 0) {
    ASSERT_EQ(dest.got.wait_for(20s), std::future_status::ready);
    auto got = dest.got.get();
    ASSERT_EQ(got.size(), count);
    for (uint32_t k = 0; k < count; ++k) {
        EXPECT_EQ(got[k], payload(base + k + 1, size)) << "destination connection " << k + 1
                                                << " got another source connection's bytes, or damaged ones";
        EXPECT_EQ(answers[k], cat("got ", size, " on connection ", k + 1)) << "the answer of connection " << k + 1;
    }
}

}  // namespace rmig::test::tunnel

