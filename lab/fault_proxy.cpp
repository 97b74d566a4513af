#include "lab/fault_proxy.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "common/error.hpp"
#include "common/log.hpp"

namespace rmig::lab {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr int kPollMs = 20;
constexpr size_t kBuffer = 64 << 10;

// Close with SO_LINGER 0 sends RST instead of FIN: the peer sees "connection reset".
void arm_reset(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace

const char* to_string(LinkFault f) {
    switch (f) {
    case LinkFault::cut: return "cut";
    case LinkFault::corrupt: return "corrupt";
    case LinkFault::stall: return "stall";
    case LinkFault::delay: return "delay";
    case LinkFault::drop: return "drop";
    case LinkFault::outage: return "outage";
    case LinkFault::down: return "down";
    }
    return "?";
}

struct FaultProxy::Conn {
    size_t index = 0;
    UniqueFd from_source, to_dest;
    std::atomic<uint64_t> forwarded{0};
    std::atomic<bool> stalled{false};
    std::atomic<bool> dropped{false};
    std::atomic<int64_t> delay_until{0};  // steady_clock ticks
    std::atomic<int> pumps{2};
    std::jthread up, down;
};

FaultProxy::FaultProxy(const std::string& upstream, bool gated) : gated_(gated) {
    std::string hp = upstream.rfind("tcp:", 0) == 0 ? upstream.substr(4) : upstream;
    upstream_ = net::parse_host_port(hp);
    listen_fd_ = net::tcp_listen(net::parse_host_port("127.0.0.1:0"));
    port_ = net::local_port(listen_fd_.get());
    acceptor_ = std::jthread([this] { accept_loop(); });
}

FaultProxy::~FaultProxy() {
    stop_ = true;
    acceptor_ = {};
    std::vector<std::unique_ptr<Conn>> conns;
    {
        std::lock_guard lock(mutex_);
        conns.swap(conns_);
    }
    for (auto& c : conns) {
        c->up = {};
        c->down = {};
    }
}

std::string FaultProxy::address() const { return cat("tcp:127.0.0.1:", port_); }

void FaultProxy::open_gate() { gated_ = false; }

size_t FaultProxy::connections() const {
    std::lock_guard lock(mutex_);
    return conns_.size();
}

FaultProxy::Conn* FaultProxy::conn(size_t channel) const {
    std::lock_guard lock(mutex_);
    return channel < conns_.size() ? conns_[channel].get() : nullptr;
}

uint64_t FaultProxy::forwarded(size_t channel) const {
    Conn* c = conn(channel);
    return c ? c->forwarded.load() : 0;
}

void FaultProxy::apply(LinkFault f, size_t channel, uint64_t skip, milliseconds delay) {
    switch (f) {
    case LinkFault::cut: {
        cut_ = true;  // pumps see it within kPollMs and close their sockets with RST
        applied_ = true;
        return;
    }
    case LinkFault::outage: {
        outage_until_ = (Clock::now() + delay).time_since_epoch().count();
        applied_ = true;
        return;
    }
    case LinkFault::down: {
        down_until_ = (Clock::now() + delay).time_since_epoch().count();
        std::lock_guard lock(mutex_);
        for (auto& c : conns_) c->dropped = true;  // pumps close them with RST within kPollMs
        applied_ = true;
        return;
    }
    case LinkFault::corrupt: {
        std::lock_guard lock(mutex_);
        corrupt_channel_ = channel;
        corrupt_skip_ = skip;
        return;
    }
    case LinkFault::stall:
    case LinkFault::drop:
    case LinkFault::delay: {
        Conn* c = conn(channel);
        if (!c) throw Error(cat("fault proxy: no connection ", channel, " to ", to_string(f)));
        if (f == LinkFault::stall)
            c->stalled = true;
        else if (f == LinkFault::drop)
            c->dropped = true;
        else
            c->delay_until = (Clock::now() + delay).time_since_epoch().count();
        applied_ = true;
        return;
    }
    }
}

void FaultProxy::limit_rate(uint64_t bytes_per_second) { rate_ = bytes_per_second; }

void FaultProxy::pace(size_t bytes) {
    const uint64_t rate = rate_.load();
    if (rate == 0) return;
    Clock::time_point at;
    {
        std::lock_guard lock(pace_mutex_);
        at = std::max(Clock::now(), next_free_);
        next_free_ = at + std::chrono::nanoseconds(bytes * 1'000'000'000ULL / rate);
    }
    std::this_thread::sleep_until(at);
}

bool FaultProxy::broken(const Conn& c) const { return cut_ || c.dropped; }

bool FaultProxy::held(const Conn& c) const {
    auto now = Clock::now().time_since_epoch().count();
    return gated_ || c.stalled || now < c.delay_until || now < outage_until_;
}

void FaultProxy::accept_loop() {
    while (!stop_) {
        UniqueFd in;
        try {
            in = net::accept_for(listen_fd_.get(), milliseconds(50));
        } catch (const std::exception& e) {
            log::warn("fault proxy: accept: ", e.what());
            continue;
        }
        if (!in) continue;
        if (cut_ || Clock::now().time_since_epoch().count() < down_until_) {
            arm_reset(in.get());
            continue;  // closed with RST right here: the link is down
        }
        // Registered before the upstream connect, so a fault can be aimed at
        // it as soon as the destination could have seen it.
        auto c = std::make_unique<Conn>();
        Conn* raw = c.get();
        {
            std::lock_guard lock(mutex_);
            raw->index = conns_.size();
            conns_.push_back(std::move(c));
        }
        try {
            raw->to_dest = net::tcp_connect(upstream_, milliseconds(5000));
        } catch (const std::exception& e) {
            log::warn("fault proxy: connecting upstream: ", e.what());
            arm_reset(in.get());
            continue;
        }
        raw->from_source = std::move(in);
        std::lock_guard lock(mutex_);
        raw->up = std::jthread([this, raw] { pump(*raw, true); });
        raw->down = std::jthread([this, raw] { pump(*raw, false); });
    }
}

// One direction of one connection. Every wait is a short poll so stop, cut,
// stall and delay take effect within kPollMs even when a peer is not reading.
void FaultProxy::pump(Conn& c, bool to_dest) {
    int from = to_dest ? c.from_source.get() : c.to_dest.get();
    int to = to_dest ? c.to_dest.get() : c.from_source.get();
    std::vector<unsigned char> buf(kBuffer);
    bool eof = false;
    while (!stop_ && !broken(c)) {
        if (held(c)) {
            std::this_thread::sleep_for(milliseconds(kPollMs));
            continue;
        }
        pollfd p{from, POLLIN, 0};
        int r = ::poll(&p, 1, kPollMs);
        if (r <= 0 || held(c)) continue;  // a stall or delay set while polling wins
        ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
        if (n == 0) {
            eof = true;
            break;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            break;
        }
        if (to_dest) pace(size_t(n));
        if (to_dest) {
            std::lock_guard lock(mutex_);
            if (corrupt_channel_ == c.index) {
                if (corrupt_skip_ < uint64_t(n)) {
                    buf[corrupt_skip_] ^= 0x5a;
                    corrupt_channel_.reset();
                    applied_ = true;
                } else {
                    corrupt_skip_ -= uint64_t(n);
                }
            }
        }
        size_t off = 0;
        while (off < size_t(n) && !stop_ && !broken(c)) {
            pollfd w{to, POLLOUT, 0};
            if (::poll(&w, 1, kPollMs) <= 0) continue;
            ssize_t m = ::send(to, buf.data() + off, size_t(n) - off, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (m < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                break;
            }
            off += size_t(m);
        }
        if (off < size_t(n)) break;
        if (to_dest) c.forwarded += uint64_t(n);
    }
    if (eof && !broken(c)) {
        ::shutdown(to, SHUT_WR);  // pass the clean half-close on
    } else if (!broken(c)) {
        // An error on one side: break the connection on both sides.
        arm_reset(from);
        arm_reset(to);
        ::shutdown(from, SHUT_RDWR);
        ::shutdown(to, SHUT_RDWR);
    }
    // The last pump of a connection closes both sockets (with RST after a cut).
    if (--c.pumps == 0) {
        if (broken(c)) {
            arm_reset(c.from_source.get());
            arm_reset(c.to_dest.get());
        }
        c.from_source.reset();
        c.to_dest.reset();
    }
}

}  // namespace rmig::lab
