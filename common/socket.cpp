#include "common/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "common/error.hpp"

namespace rmig::net {

std::string HostPort::str() const {
    if (host.find(':') != std::string::npos) return cat('[', host, "]:", port);
    return cat(host, ':', port);
}

HostPort parse_host_port(const std::string& text) {
    HostPort hp;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw Error(cat("bad address '", text, "': expected [IPv6]:PORT"));
        hp.host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos)
            throw Error(cat("bad address '", text, "': expected HOST:PORT"));
        hp.host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    char* end = nullptr;
    errno = 0;
    long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || errno != 0 || p < 0 || p > 65535)
        throw Error(cat("bad port in '", text, "': expected 0..65535"));
    hp.port = static_cast<uint16_t>(p);
    return hp;
}

namespace {

struct AddrInfo {
    addrinfo* list = nullptr;
    ~AddrInfo() {
        if (list) freeaddrinfo(list);
    }
};

AddrInfo resolve(const HostPort& where, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    AddrInfo ai;
    std::string port = std::to_string(where.port);
    const char* host = where.host.empty() ? nullptr : where.host.c_str();
    int rc = getaddrinfo(host, port.c_str(), &hints, &ai.list);
    if (rc != 0) throw Error(cat("cannot resolve '", where.str(), "': ", gai_strerror(rc)));
    return ai;
}

}  // namespace

UniqueFd tcp_listen(const HostPort& where, int backlog) {
    AddrInfo ai = resolve(where, true);
    int last_err = 0;
    for (addrinfo* a = ai.list; a; a = a->ai_next) {
        UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
        if (!fd) {
            last_err = errno;
            continue;
        }
        int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd.get(), backlog) == 0)
            return fd;
        last_err = errno;
    }
    throw_errno(cat("cannot listen on tcp ", where.str()), last_err);
}

UniqueFd tcp_connect(const HostPort& where, Millis timeout) {
    AddrInfo ai = resolve(where, false);
    int last_err = ETIMEDOUT;
    for (addrinfo* a = ai.list; a; a = a->ai_next) {
        UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                             a->ai_protocol));
        if (!fd) {
            last_err = errno;
            continue;
        }
        int rc = ::connect(fd.get(), a->ai_addr, a->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            pollfd p{fd.get(), POLLOUT, 0};
            rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
            if (rc == 0) {
                last_err = ETIMEDOUT;
                continue;
            }
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                last_err = err;
                continue;
            }
            rc = 0;
        }
        if (rc != 0) {
            last_err = errno;
            continue;
        }
        int flags = ::fcntl(fd.get(), F_GETFL);
        ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
        return fd;
    }
    throw_errno(cat("cannot connect to tcp ", where.str()), last_err);
}

uint16_t local_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        throw_errno("getsockname");
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return 0;
}

std::string peer_name(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (ss.ss_family == AF_UNIX) return "unix";
    if (getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return "?";
    return ss.ss_family == AF_INET6 ? cat('[', host, "]:", serv) : cat(host, ':', serv);
}

void tune_stream_socket(int fd, int buffer_bytes) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (buffer_bytes > 0) {
        if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer_bytes, sizeof buffer_bytes) != 0)
            ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
        if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof buffer_bytes) != 0)
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    }
}

void set_congestion_control(int fd, const std::string& name) {
    if (::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(), static_cast<socklen_t>(name.size())) == 0)
        return;
    int err = errno;
    std::string available = "?";
    if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_available_congestion_control", "r")) {
        char line[256] = {};
        if (std::fgets(line, sizeof line, f)) available = line;
        std::fclose(f);
        while (!available.empty() && available.back() == '\n') available.pop_back();
    }
    throw Error(cat("TCP congestion control '", name, "': ", std::strerror(err), " (loaded: ", available,
                    "; as root `modprobe tcp_", name, "` loads one)"));
}

namespace {
sockaddr_un unix_addr(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path)
        throw Error(cat("UNIX socket path too long (", path.size(), " bytes, max ",
                        sizeof sa.sun_path - 1, "): ", path));
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    return sa;
}
}  // namespace

UniqueFd unix_listen(const std::string& path, int backlog) {
    sockaddr_un sa = unix_addr(path);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("socket(AF_UNIX)");
    ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
        throw_errno(cat("cannot bind UNIX socket ", path));
    if (::listen(fd.get(), backlog) != 0) throw_errno(cat("cannot listen on UNIX socket ", path));
    return fd;
}

UniqueFd unix_connect(const std::string& path, Millis timeout) {
    sockaddr_un sa = unix_addr(path);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) throw_errno("socket(AF_UNIX)");
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) return fd;
        int err = errno;
        // The peer may not have created or started listening on the socket yet.
        if ((err != ENOENT && err != ECONNREFUSED) || std::chrono::steady_clock::now() >= deadline)
            throw_errno(cat("cannot connect to UNIX socket ", path), err);
        std::this_thread::sleep_for(Millis(10));
    }
}

bool wait_readable(int fd, Millis timeout) {
    pollfd p{fd, POLLIN, 0};
    for (;;) {
        int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) throw_errno("poll");
        return rc > 0;
    }
}

UniqueFd accept_for(int listen_fd, Millis timeout) {
    if (!wait_readable(listen_fd, timeout)) return UniqueFd();
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) throw_errno("accept");
    return UniqueFd(fd);
}

size_t read_some(int fd, void* buf, size_t size) {
    for (;;) {
        ssize_t n = ::read(fd, buf, size);
        if (n >= 0) return static_cast<size_t>(n);
        if (errno != EINTR) throw_errno("read");
    }
}

size_t read_full(int fd, void* buf, size_t size) {
    auto* p = static_cast<char*>(buf);
    size_t done = 0;
    while (done < size) {
        size_t n = read_some(fd, p + done, size - done);
        if (n == 0) break;
        done += n;
    }
    return done;
}

void write_full(int fd, const void* buf, size_t size) {
    const auto* p = static_cast<const char*>(buf);
    while (size > 0) {
        ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK) n = ::write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("write");
        }
        p += n;
        size -= static_cast<size_t>(n);
    }
}

void writev_full(int fd, iovec* iov, int count) {
    while (count > 0) {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<size_t>(count);
        ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("write");
        }
        auto left = static_cast<size_t>(n);
        while (count > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            ++iov;
            --count;
        }
        if (count > 0) {
            iov->iov_base = static_cast<char*>(iov->iov_base) + left;
            iov->iov_len -= left;
        }
    }
}

}  // namespace rmig::net
