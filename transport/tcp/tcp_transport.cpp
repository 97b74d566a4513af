#include "transport/tcp/tcp_backend.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <mutex>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/log_limiter.hpp"
#include "common/socket.hpp"
#include "transport/tcp/hello_gate.hpp"
#include "wire/checksum.hpp"

namespace rmig::transport::tcp {

namespace {

void set_recv_timeout(int fd, Millis t) {
    timeval tv{};
    tv.tv_sec = t.count() / 1000;
    tv.tv_usec = (t.count() % 1000) * 1000;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void tune(int fd, const Options& o) {
    net::tune_stream_socket(fd, o.socket_buffer_bytes);
    if (!o.congestion_control.empty()) net::set_congestion_control(fd, o.congestion_control);
    // Detect a vanished host (power loss, cut link) within dead_peer_timeout
    // both when we are sending (TCP_USER_TIMEOUT) and when idle (keepalive).
    int one = 1;
    auto secs = static_cast<int>(std::max<int64_t>(1, o.dead_peer_timeout.count() / 4000));
    int probes = 3;
    auto user_timeout = static_cast<unsigned>(o.dead_peer_timeout.count());
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof secs);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof secs);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
    ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
}

// Reads exactly `size` bytes; returns how many arrived before EOF. A receive
// timeout (only armed during the handshake) surfaces as LinkError.
size_t read_exact(int fd, void* buf, size_t size, const std::string& who) {
    try {
        return net::read_full(fd, buf, size);
    } catch (const Error& e) {
        throw LinkError(cat(who, ": ", e.what()));
    }
}

// A frame's payload straight from the socket into the caller's pieces
// (readv), checksummed as it passes.
class SocketPayloadReader final : public PayloadReader {
public:
    SocketPayloadReader(int fd, const std::string& name, wire::FrameDecoder& dec, size_t length)
        : fd_(fd), name_(name), dec_(dec), sum_(dec.payload_seed()), left_(length) {}

    void read(std::span<const std::span<std::byte>> pieces) override {
        size_t want = 0;
        for (auto p : pieces) want += p.size();
        if (want > left_)
            throw ProtocolError(cat(name_, ": read of ", want, " bytes past the payload (", left_, " left)"));
        size_t i = 0, off = 0;  // first piece not yet full, and how much of it is
        while (i < pieces.size()) {
            iovec iov[64];
            int n = 0;
            for (size_t j = i; j < pieces.size() && n < 64; ++j) {
                size_t skip = j == i ? off : 0;
                if (pieces[j].size() == skip) continue;
                iov[n++] = {pieces[j].data() + skip, pieces[j].size() - skip};
            }
            if (n == 0) break;
            ssize_t got = ::readv(fd_, iov, n);
            if (got < 0) {
                if (errno == EINTR) continue;
                throw LinkError(cat(name_, ": reading a payload: ", std::strerror(errno)));
            }
            if (got == 0) dec_.truncated("payload", length_read_, length_read_ + left_);
            auto g = static_cast<size_t>(got);
            left_ -= g;
            length_read_ += g;
            while (g > 0 && i < pieces.size()) {
                size_t room = pieces[i].size() - off;
                size_t take = std::min(room, g);
                sum_.update(pieces[i].subspan(off, take));
                off += take;
                g -= take;
                if (off == pieces[i].size()) ++i, off = 0;
            }
            while (i < pieces.size() && pieces[i].size() == off) ++i, off = 0;
        }
    }
    size_t left() const override { return left_; }
    uint64_t digest() const { return sum_.digest(); }

private:
    int fd_;
    const std::string& name_;
    wire::FrameDecoder& dec_;
    wire::StreamingChecksum sum_;
    size_t left_;
    size_t length_read_ = 0;
};

class TcpChannel final : public Channel {
public:
    TcpChannel(UniqueFd fd, const wire::Hello& peer, std::string name)
        : fd_(std::move(fd)),
          peer_(peer),
          name_(std::move(name)),
          enc_(peer.channel_id),
          dec_(peer.channel_id, name_) {}

    void send(wire::FrameType type, std::span<const std::byte> payload) override {
        std::lock_guard lock(send_mutex_);
        auto header = enc_.encode(type, payload);
        iovec iov[2] = {{header.data(), header.size()},
                        {const_cast<std::byte*>(payload.data()), payload.size()}};
        try {
            net::writev_full(fd_.get(), iov, payload.empty() ? 1 : 2);
        } catch (const Error& e) {
            throw LinkError(cat(name_, ": sending ", wire::to_string(type), " frame: ", e.what()));
        }
    }

    wire::FrameType recv(std::vector<std::byte>& payload) override {
        std::lock_guard lock(recv_mutex_);
        wire::FrameHeader h = read_header();
        payload.resize(h.length);
        size_t got = read_exact(fd_.get(), payload.data(), h.length, name_);
        if (got < h.length) dec_.truncated("payload", got, h.length);
        dec_.verify_payload(h, payload);
        return h.type;
    }

    wire::FrameType recv_into(const PayloadConsumer& consume) override {
        std::lock_guard lock(recv_mutex_);
        wire::FrameHeader h = read_header();
        SocketPayloadReader reader(fd_.get(), name_, dec_, h.length);
        consume(h.type, h.length, reader);
        if (reader.left() != 0)
            throw ProtocolError(cat(name_, ": ", reader.left(), " payload bytes left unread"));
        dec_.verify_digest(h, reader.digest());
        return h.type;
    }
    bool recv_into_is_direct() const override { return true; }

    void shutdown() override { ::shutdown(fd_.get(), SHUT_RDWR); }
    // The kernel doubles the SO_SNDBUF asked for and counts its per-packet
    // bookkeeping against the result, so asking for half of `bytes` leaves
    // about `bytes` of payload queued at most; a writer blocks beyond that.
    std::optional<bool> peer_acknowledging(Millis within) const override {
        tcp_info info{};
        socklen_t len = sizeof info;
        if (::getsockopt(fd_.get(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
        return info.tcpi_unacked == 0 || info.tcpi_last_ack_recv < uint64_t(within.count());
    }
    bool limit_in_flight(size_t bytes) override {
        int v = static_cast<int>(std::min<size_t>(bytes / 2, size_t{1} << 30));
        return ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &v, sizeof v) == 0;
    }
    const wire::Hello& peer_hello() const override { return peer_; }
    const std::string& name() const override { return name_; }

private:
    // The next frame's header, decoded; with recv_mutex_ held.
    wire::FrameHeader read_header() {
        wire::HeaderBytes hb;
        size_t got = read_exact(fd_.get(), hb.data(), hb.size(), name_);
        if (got == 0)
            throw LinkError(cat(name_, ": peer closed the channel without an end frame"));
        if (got < hb.size()) dec_.truncated("header", got, hb.size());
        return dec_.decode_header(hb);
    }

    UniqueFd fd_;
    wire::Hello peer_;
    std::string name_;
    std::mutex send_mutex_, recv_mutex_;
    wire::FrameEncoder enc_;
    wire::FrameDecoder dec_;
};

std::string channel_name(const wire::Hello& h, const std::string& peer, bool outgoing) {
    std::string what = h.kind == wire::ChannelKind::control ? "control channel"
                                                            : cat("channel ", h.channel_id);
    return cat("tcp ", what, outgoing ? " to " : " from ", peer);
}

class TcpIncoming final : public Incoming {
public:
    TcpIncoming(UniqueFd fd, const wire::Hello& hello, std::string peer)
        : fd_(std::move(fd)), hello_(hello), peer_(std::move(peer)) {}

    const wire::Hello& hello() const override { return hello_; }
    const std::string& peer() const override { return peer_; }

    std::unique_ptr<Channel> accept(const wire::Hello& reply) override {
        auto b = wire::encode_hello(wire::accepting_reply(hello_, reply), true);
        net::write_full(fd_.get(), b.data(), b.size());
        set_recv_timeout(fd_.get(), Millis(0));
        return std::make_unique<TcpChannel>(std::move(fd_), hello_,
                                            channel_name(hello_, peer_, false));
    }

    void refuse(wire::HelloStatus status) override {
        auto b = wire::encode_hello(wire::refusing_reply(hello_, status), true);
        try {
            net::write_full(fd_.get(), b.data(), b.size());
        } catch (const Error&) {
            // The peer is gone already; nothing to tell it.
        }
        fd_.reset();
    }

private:
    UniqueFd fd_;
    wire::Hello hello_;
    std::string peer_;
};

class TcpListener final : public Listener {
public:
    TcpListener(const std::string& host_port, const Options& opts) : opts_(opts) {
        auto hp = net::parse_host_port(host_port);
        // A deep accept queue: the gate empties it at once, and a burst of
        // strangers' connections must not fill it ahead of a real source.
        UniqueFd fd = net::tcp_listen(hp, 4096);
        // Accepted sockets inherit the buffers, and the window scale they
        // offer in the handshake is sized from them.
        net::tune_stream_socket(fd.get(), opts.socket_buffer_bytes);
        hp.port = net::local_port(fd.get());
        address_ = "tcp:" + hp.str();
        gate_ = std::make_unique<HelloGate>(std::move(fd), opts);
    }

    std::unique_ptr<Incoming> next(Millis timeout) override {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
            if (left.count() < 0) return nullptr;
            auto g = gate_->next(left);
            if (!g) return nullptr;
            try {
                tune(g->fd.get(), opts_);
                wire::Hello h = wire::decode_hello(g->hello, false, g->peer);
                auto incoming = std::make_unique<TcpIncoming>(std::move(g->fd), h, g->peer);
                if (h.version != wire::kProtocolVersion) {
                    dropped_.warn("refusing ", g->peer, ": it speaks wire version ", h.version);
                    incoming->refuse(wire::HelloStatus::bad_version);
                    continue;
                }
                return incoming;
            } catch (const Error& e) {
                // A stray or broken client must not take the listener down.
                dropped_.warn("dropped connection: ", e.what());
            }
        }
    }

    std::string address() const override { return address_; }

private:
    Options opts_;
    std::string address_;
    log::Limiter dropped_{"malformed hellos"};
    std::unique_ptr<HelloGate> gate_;  // last: its thread stops first
};

}  // namespace

std::unique_ptr<Listener> listen(const std::string& host_port, const Options& opts) {
    return std::make_unique<TcpListener>(host_port, opts);
}

std::unique_ptr<Channel> connect(const std::string& host_port, const wire::Hello& hello,
                                 const Options& opts) {
    auto hp = net::parse_host_port(host_port);
    UniqueFd fd = net::tcp_connect(hp, opts.connect_timeout);
    std::string peer = hp.str();
    tune(fd.get(), opts);
    set_recv_timeout(fd.get(), opts.handshake_timeout);
    auto out = wire::encode_hello(hello, false);
    std::string what = cat("handshake with ", peer);
    try {
        net::write_full(fd.get(), out.data(), out.size());
    } catch (const Error& e) {
        throw LinkError(cat(what, ": ", e.what()));
    }
    wire::HelloBytes in;
    size_t got = read_exact(fd.get(), in.data(), in.size(), what);
    if (got < in.size())
        throw LinkError(cat(what, ": peer closed the connection after ", got, " of ", in.size(),
                            " reply bytes"));
    wire::Hello reply = wire::decode_hello(in, true, peer);
    if (reply.status != wire::HelloStatus::ok)
        throw Error(cat(peer, " refused ", hello.kind == wire::ChannelKind::control
                                               ? std::string("the control channel")
                                               : cat("channel ", hello.channel_id),
                        ": ", wire::to_string(reply.status),
                        reply.status == wire::HelloStatus::bad_version
                            ? cat(" (it speaks version ", reply.version, ")")
                            : std::string()));
    wire::check_version(reply, peer);
    set_recv_timeout(fd.get(), Millis(0));
    return std::make_unique<TcpChannel>(std::move(fd), reply, channel_name(hello, peer, true));
}

}  // namespace rmig::transport::tcp
