// A fault-injecting TCP link for the lab: it sits between `rmig migrate` and
// `rmig receive` (rmig's own inter-host link, tcp: URIs), forwards every
// connection byte for byte, and on command breaks it the ways real links
// break: cut (RST both sides), corrupt one byte in flight, stall a channel
// (stop forwarding, sockets stay open), or delay a channel for a while.
//
// Connections are numbered in accept order, which is rmig's channel order:
// 0 = control, 1 = QEMU's main stream, 2.. = multifd streams. The proxy can
// start gated (accepting but forwarding nothing) so a fault can be placed
// before the first byte reaches the destination.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/socket.hpp"
#include "common/unique_fd.hpp"

namespace rmig::lab {

enum class LinkFault { cut, corrupt, stall, delay, drop, outage, down };
const char* to_string(LinkFault f);

class FaultProxy {
public:
    // Listens on 127.0.0.1 (a free port) and forwards to `upstream` ("tcp:HOST:PORT").
    explicit FaultProxy(const std::string& upstream, bool gated = false);
    ~FaultProxy();  // stops and joins everything
    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    std::string address() const;  // "tcp:127.0.0.1:PORT"
    void open_gate();
    size_t connections() const;
    // Bytes forwarded source->destination on connection `channel` (0 if none yet).
    uint64_t forwarded(size_t channel) const;

    // Applies a fault now. cut: every connection, now and later. corrupt: the
    // next source->destination byte on `channel` is flipped (a byte `skip`
    // bytes further on, to land inside a frame rather than on its header).
    // stall: `channel` forwards nothing more in either direction. delay:
    // `channel` forwards nothing for `delay`, then carries on. drop: `channel`
    // alone is cut (RST both sides); later connections pass. outage: every
    // connection, now and new, forwards nothing for `delay` (a link down
    // without resets), then carries on. down: every connection is cut (RST
    // both sides) and new ones are reset on accept for `delay`; then the
    // link is back (a cable pulled and plugged in again).
    void apply(LinkFault f, size_t channel, uint64_t skip = 0,
               std::chrono::milliseconds delay = std::chrono::milliseconds(0));
    // Source->destination bytes per second over all connections (0: no limit):
    // a link slow enough that a fault lands in the middle of a transfer.
    void limit_rate(uint64_t bytes_per_second);
    // Once the fault has actually touched the stream (a corrupt waits for traffic).
    bool applied() const { return applied_; }

private:
    struct Conn;
    void accept_loop();
    void pump(Conn& c, bool to_dest);
    Conn* conn(size_t channel) const;
    bool held(const Conn& c) const;
    bool broken(const Conn& c) const;  // cut, or this connection dropped

    net::HostPort upstream_;
    UniqueFd listen_fd_;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<bool> gated_;
    std::atomic<bool> cut_{false};
    std::atomic<bool> applied_{false};
    std::atomic<int64_t> outage_until_{0};  // steady_clock ticks
    std::atomic<int64_t> down_until_{0};    // steady_clock ticks: accepts reset until then
    void pace(size_t bytes);                // waits for the rate limit
    std::atomic<uint64_t> rate_{0};
    std::mutex pace_mutex_;
    std::chrono::steady_clock::time_point next_free_{};
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<Conn>> conns_;
    // A fault waiting for its channel to exist or to carry traffic.
    std::optional<size_t> corrupt_channel_;
    uint64_t corrupt_skip_ = 0;
    std::jthread acceptor_;
};

}  // namespace rmig::lab
