#include "transport/dpdk/memif_guard.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <sstream>
#include <vector>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/log_limiter.hpp"

namespace rmig::transport::dpdk {

namespace {

// memif serves one client per interface id; a few more are strangers or
// clients about to be refused ("Already connected"), dropped at once beyond.
constexpr size_t kMaxRelays = 16;
// memif sends one descriptor per message; room for a few more costs nothing.
constexpr size_t kMaxFds = 4;
// memif's messages are 128 bytes; anything up to this is relayed as it is.
constexpr size_t kMaxMessage = 1024;
// How long a client may wait for memif's backlog (of 1) to take it.
constexpr std::chrono::milliseconds kWaitForMemif{2000};
// How long memif may take to tear a connection down on its thread.
constexpr std::chrono::milliseconds kMemifTeardown{2000};

std::string describe(const UnixName& n) {
    return n.abstract ? cat("abstract socket '@", n.name, "'") : cat("socket '", n.name, "'");
}

socklen_t address_of(const UnixName& n, sockaddr_un& a) {
    a = {};
    a.sun_family = AF_UNIX;
    size_t room = sizeof(a.sun_path) - 1 - (n.abstract ? 1 : 0);
    if (n.name.empty() || n.name.size() > room)
        throw Error(cat("memif ", describe(n), ": the name must have 1 to ", room, " characters"));
    std::memcpy(a.sun_path + (n.abstract ? 1 : 0), n.name.data(), n.name.size());
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + (n.abstract ? 1 : 0) + n.name.size() +
                                  (n.abstract ? 0 : 1));
}

UniqueFd seqpacket_socket(int flags = 0) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | flags, 0));
    if (!fd) throw_errno("memif guard: socket");
    return fd;
}

UniqueFd listen_on(const UnixName& n, MemifRole role) {
    sockaddr_un a;
    socklen_t len = address_of(n, a);
    UniqueFd fd = seqpacket_socket(SOCK_NONBLOCK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) {
        int e = errno;
        if (role == MemifRole::client)
            throw Error(cat("memif client: cannot bind its private ", describe(n), ": ", std::strerror(e)));
        throw Error(cat("memif server: cannot bind ", describe(n), ": ", std::strerror(e),
                        e == EADDRINUSE ? (n.abstract ? " (another memif server on this host uses it: give another socket=)"
                                                      : " (a file is there: another server uses it, or one that died "
                                                        "left it; remove it if none runs)")
                                        : ""));
    }
    if (::listen(fd.get(), 64) != 0) throw_errno(cat("memif: listen on ", describe(n)));
    return fd;
}

// A client's connection to its server, made up front so that a missing server
// is an error at once (as it is for memif itself) rather than a link that
// never comes up. A server's backlog may be full for a moment (memif's is 1).
UniqueFd connect_to_server(const UnixName& n) {
    sockaddr_un a;
    socklen_t len = address_of(n, a);
    UniqueFd fd = seqpacket_socket();
    timeval two_seconds{2, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &two_seconds, sizeof two_seconds);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) {
        int e = errno;
        throw Error(cat("memif client: cannot connect to the server's ", describe(n), ": ", std::strerror(e),
                        " (start the listening side first, with the same socket=",
                        n.abstract ? "" : " and socket-abstract=no", ")"));
    }
    return fd;
}

UniqueFd connect_to(const UnixName& n) {
    sockaddr_un a;
    socklen_t len = address_of(n, a);
    UniqueFd fd = seqpacket_socket(SOCK_NONBLOCK);  // memif's backlog full: fail, never block the guard
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) return {};
    return fd;
}

enum class Moved { message, leaving, nothing, from_closed, to_closed };

// memif's control message type DISCONNECT (memif.h), in the first 2 bytes.
constexpr uint16_t kMemifDisconnect = 8;

// Moves one message from `from` to `to` (-1: read and dropped), with the
// descriptors it carries; ours are closed once the kernel has copied them.
// A DISCONNECT is not sent but returned (`leaving`) with its bytes in
// `held`, for the caller to pass on at the right moment.
Moved move_one(int from, int to, std::vector<std::byte>* held = nullptr) {
    std::byte buf[kMaxMessage];
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
    iovec iov{buf, sizeof buf};
    msghdr in{};
    in.msg_iov = &iov;
    in.msg_iovlen = 1;
    in.msg_control = ctl;
    in.msg_controllen = sizeof ctl;
    ssize_t n = ::recvmsg(from, &in, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return Moved::nothing;
    if (n <= 0) return Moved::from_closed;  // memif never sends an empty message
    std::vector<UniqueFd> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&in); c; c = CMSG_NXTHDR(&in, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            fds.emplace_back(fd);
        }
    }
    if (to < 0) return Moved::message;
    uint16_t type = 0;
    if (n >= 2) std::memcpy(&type, buf, sizeof type);
    if (held && type == kMemifDisconnect && fds.empty()) {
        held->assign(buf, buf + n);
        return Moved::leaving;
    }
    iov.iov_len = static_cast<size_t>(n);
    msghdr out{};
    out.msg_iov = &iov;
    out.msg_iovlen = 1;
    alignas(cmsghdr) char out_ctl[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    if (!fds.empty()) {
        out.msg_control = out_ctl;
        out.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&out);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        for (size_t i = 0; i < fds.size(); ++i) {
            int fd = fds[i].get();
            std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof fd);
        }
    }
    // A peer that leaves a few hundred bytes of control messages unread is
    // broken: dropped rather than allowed to block the guard.
    ssize_t sent = ::sendmsg(to, &out, MSG_NOSIGNAL | MSG_DONTWAIT);
    return sent == n ? Moved::message : Moved::to_closed;
}

// Waits (bounded) until memif has closed its side of `fd`: it does so at the
// end of its teardown of the connection. What it says meanwhile is dropped.
void wait_closed_by_memif(int fd) {
    auto until = std::chrono::steady_clock::now() + kMemifTeardown;
    while (std::chrono::steady_clock::now() < until) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        if (move_one(fd, -1) == Moved::from_closed) return;
    }
}

}  // namespace

// The peer (a client of our server, or the server our client goes to) and
// memif's side of it. A server's memif keeps its side open until it has said
// hello on it (the send that would otherwise fail and abort); a client's
// memif is greeted rather than greeting, so it needs no such care. Once
// greeted, either side closing closes both, which memif sees as a disconnect.
struct MemifGuard::Relay {
    UniqueFd outer, inner;
    bool greeted = false;

    // Forwards what the peer sent; false when the relay is done.
    bool on_outer(MemifGuard& g) {
        std::vector<std::byte> held;
        for (int i = 0; i < 64 && outer; ++i) {
            Moved m = move_one(outer.get(), inner.get(), &held);
            if (m == Moved::nothing) break;
            if (m == Moved::to_closed) return false;  // memif closed its side itself
            if (m == Moved::leaving) {
                g.pass_on_leaving(*this, [&] {
                    ::send(inner.get(), held.data(), held.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
                });
                return false;
            }
            if (m == Moved::from_closed) {
                outer.reset();
                if (!greeted) return true;  // kept for memif's hello
                g.pass_on_leaving(*this, [&] { ::shutdown(inner.get(), SHUT_WR); });
                return false;
            }
        }
        return alive();
    }
    // Forwards what memif sent; false when the relay is done.
    bool on_inner() {
        for (int i = 0; i < 64 && inner; ++i) {
            Moved m = move_one(inner.get(), outer.get());
            if (m == Moved::nothing) break;
            if (m == Moved::from_closed) return false;
            greeted = true;
            if (m == Moved::to_closed) outer.reset();
        }
        return alive();
    }
    bool alive() const { return inner && (outer || !greeted); }
};

namespace {

std::atomic<unsigned> g_private_names{0};

}  // namespace

std::optional<MemifSocket> memif_socket(const std::string& devargs) {
    if (devargs.rfind("net_memif", 0) != 0) return std::nullopt;
    UnixName n{.name = "/run/memif.sock", .abstract = true};  // memif's defaults
    bool server = true;
    std::stringstream in(devargs);
    std::string item;
    std::getline(in, item, ',');  // the device name
    while (std::getline(in, item, ',')) {
        auto eq = item.find('=');
        std::string key = item.substr(0, eq), v = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (key == "role") server = v == "server" || v == "master";
        if (key == "socket") n.name = v;
        if (key == "socket-abstract") n.abstract = v != "no";
    }
    return MemifSocket{server ? MemifRole::server : MemifRole::client, n};
}

std::string with_memif_socket(const std::string& devargs, const std::string& inner) {
    std::stringstream in(devargs);
    std::string item, out;
    std::getline(in, out, ',');
    while (std::getline(in, item, ','))
        if (item.rfind("socket=", 0) != 0 && item.rfind("socket-abstract=", 0) != 0) out += "," + item;
    return cat(out, ",socket=", inner, ",socket-abstract=yes");
}

std::string private_memif_socket_name() {
    return cat("rmig-memif-", ::getpid(), "-", g_private_names.fetch_add(1));
}

MemifGuard::MemifGuard(MemifRole role, UnixName outer, std::string inner)
    : role_(role), outer_(std::move(outer)), inner_(std::move(inner)) {
    if (role_ == MemifRole::server) {
        listener_ = listen_on(outer_, role_);
    } else {
        server_ = connect_to_server(outer_);
        listener_ = listen_on({.name = inner_, .abstract = true}, role_);
    }
    wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_) throw_errno("memif guard: eventfd");
    thread_ = std::thread([this] { run(); });
}

MemifGuard::~MemifGuard() {
    freeze();
    relays_.clear();
    if (role_ == MemifRole::server && !outer_.abstract) ::unlink(outer_.name.c_str());
}

void MemifGuard::set_around_disconnect(Around around) {
    std::lock_guard lk(around_mu_);
    around_ = std::move(around);
}

void MemifGuard::freeze() {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
    thread_.join();
    set_around_disconnect({});
}

void MemifGuard::pass_on_leaving(Relay& r, const std::function<void()>& act) {
    auto pass_on = [&] {
        act();
        wait_closed_by_memif(r.inner.get());
    };
    std::lock_guard lk(around_mu_);
    if (around_)
        around_(pass_on);
    else
        pass_on();
    r.outer.reset();
    r.inner.reset();
}

void MemifGuard::run() {
    log::Limiter dropped("memif clients dropped");
    std::vector<Relay>& relays = relays_;
    // Clients accepted while memif's own backlog (1) was full, retried every
    // few milliseconds for a while, so a burst of strangers does not push a
    // real client out.
    struct Waiting {
        UniqueFd client;
        std::chrono::steady_clock::time_point since;
    };
    std::deque<Waiting> waiting;
    std::vector<pollfd> fds;
    const UnixName inner{.name = inner_, .abstract = true};
    // Client: memif connected to the private socket; it goes to the server
    // through the connection made up front (or a new one, should memif come
    // again). Only this process may come: the name is not a secret.
    auto take_memif = [&](UniqueFd memif) {
        ucred peer{};
        socklen_t len = sizeof peer;
        if (::getsockopt(memif.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.pid != ::getpid()) {
            dropped.warn("memif client: a process other than this one (pid ", peer.pid, ") connected to its private ",
                         describe(inner), "; dropped");
            return;
        }
        if (!relays.empty()) {
            dropped.warn("memif client: memif connected twice to its private ", describe(inner), "; dropped");
            return;
        }
        UniqueFd server = server_ ? std::move(server_) : connect_to(outer_);
        if (!server) {
            log::warn("memif client: cannot reach the server's ", describe(outer_), " again: ", std::strerror(errno),
                      "; the link stays down");
            return;
        }
        relays.push_back(Relay{std::move(server), std::move(memif), true});
    };
    auto to_memif = [&](UniqueFd client) {
        UniqueFd fd = connect_to(inner);
        if (!fd) return client;
        relays.push_back(Relay{std::move(client), std::move(fd)});
        return UniqueFd();
    };
    for (;;) {
        fds.clear();
        fds.push_back({wake_.get(), POLLIN, 0});
        fds.push_back({listener_.get(), POLLIN, 0});
        for (const Relay& r : relays) {
            fds.push_back({r.outer ? r.outer.get() : -1, POLLIN, 0});
            fds.push_back({r.inner.get(), POLLIN, 0});
        }
        if (::poll(fds.data(), fds.size(), waiting.empty() ? -1 : 5) < 0) {
            if (errno == EINTR) continue;
            log::error("memif guard on ", describe(outer_), ": poll failed: ", std::strerror(errno),
                       "; no further memif clients are accepted");
            return;
        }
        if (fds[0].revents) return;
        // Relays first (their slots in `fds` are by index), then the waiting, then newcomers.
        std::vector<Relay> kept;
        for (size_t i = 0; i < relays.size(); ++i) {
            Relay& r = relays[i];
            bool alive = true;
            if (fds[3 + 2 * i].revents) alive = r.on_inner();
            if (alive && fds[2 + 2 * i].revents) alive = r.on_outer(*this);
            if (alive) kept.push_back(std::move(r));
        }
        relays = std::move(kept);
        while (!waiting.empty()) {
            UniqueFd back = to_memif(std::move(waiting.front().client));
            if (!back) {
                waiting.pop_front();
                continue;
            }
            if (std::chrono::steady_clock::now() - waiting.front().since < kWaitForMemif) {
                waiting.front().client = std::move(back);
                break;
            }
            dropped.warn("memif server ", describe(outer_), ": memif took no client for ",
                         kWaitForMemif.count(), " ms; dropped one");
            waiting.pop_front();
        }
        if (!fds[1].revents) continue;
        if (role_ == MemifRole::client) {
            for (int i = 0; i < 8; ++i) {
                UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
                if (!c) break;
                take_memif(std::move(c));
            }
            continue;
        }
        for (int i = 0; i < 64; ++i) {
            UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!client) break;
            if (relays.size() + waiting.size() >= kMaxRelays) {
                dropped.warn("memif server ", describe(outer_), ": ", kMaxRelays,
                             " clients already connecting; dropped another");
                continue;
            }
            if (waiting.empty()) client = to_memif(std::move(client));
            if (client) waiting.push_back({std::move(client), std::chrono::steady_clock::now()});
        }
    }
}

}  // namespace rmig::transport::dpdk
