// Thin, blocking socket helpers shared by the transports, the QMP client and the
// channel relay. Every failure throws Error/LinkError naming the address.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <sys/uio.h>

#include "common/unique_fd.hpp"

namespace rmig::net {

using Millis = std::chrono::milliseconds;

struct HostPort {
    std::string host;  // name, IPv4 or IPv6 literal (brackets stripped)
    uint16_t port = 0;
    std::string str() const;
};

// Parses "host:port", "[v6]:port" or ":port". Throws Error with the bad text.
HostPort parse_host_port(const std::string& text);

UniqueFd tcp_listen(const HostPort& where, int backlog = 64);
UniqueFd tcp_connect(const HostPort& where, Millis timeout);
uint16_t local_port(int fd);
std::string peer_name(int fd);

// Large buffers and TCP_NODELAY: migration streams are bulk but the handshake
// and control messages are latency sensitive. The buffers are forced past
// net.core.{w,r}mem_max where the process may (CAP_NET_ADMIN): Debian's
// ceiling (208 KiB) would hold one flow to ~10 Mbit/s at 150 ms RTT.
void tune_stream_socket(int fd, int buffer_bytes);

// Sets the socket's TCP congestion control (TCP_CONGESTION); throws with the
// host's available ones if `name` cannot be used.
void set_congestion_control(int fd, const std::string& name);

UniqueFd unix_listen(const std::string& path, int backlog = 64);  // unlinks a stale path
UniqueFd unix_connect(const std::string& path, Millis timeout);

// Accept with a timeout; returns an invalid fd on timeout.
UniqueFd accept_for(int listen_fd, Millis timeout);
// Wait until fd is readable; false on timeout.
bool wait_readable(int fd, Millis timeout);

// Full transfers. read_full returns bytes read: less than size only at EOF.
size_t read_full(int fd, void* buf, size_t size);
void write_full(int fd, const void* buf, size_t size);
void writev_full(int fd, struct iovec* iov, int count);
// One read(2) that retries on EINTR; 0 at EOF.
size_t read_some(int fd, void* buf, size_t size);

}  // namespace rmig::net
