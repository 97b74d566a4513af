// A guard in front of a memif server's socket. DPDK's memif server (22.11 and
// later) aborts the whole process when its hello to a just-accepted client
// fails ("PANIC in eal_intr_thread_main: Error adding fd ... epoll_ctl"): it
// closes the socket but leaves it registered with the EAL's interrupt thread.
// A client that vanishes before that hello is enough: a source that gave up
// while the destination was stopped, or any local process that connects and
// closes. So rmig binds the socket the user named itself, and hands memif a
// private abstract socket instead; the guard relays each client's control
// messages (with the file descriptors they carry: memif's regions and
// interrupt eventfds) to memif, and keeps memif's side of a vanished client
// open until memif has said its hello. Data never passes through the guard;
// it flows in the shared memory the relayed descriptors name.
#pragma once

#include <optional>
#include <string>
#include <thread>

#include "common/unique_fd.hpp"

namespace rmig::transport::dpdk {

// A UNIX socket name: a path, or a name in the abstract namespace.
struct UnixName {
    std::string name;
    bool abstract = true;  // memif's default (socket-abstract=yes)
};

// The socket a memif server's devargs name ("net_memif0,role=server,
// socket=/x.sock[,socket-abstract=no]"); nullopt for anything that is not a
// memif server (a client, another driver).
std::optional<UnixName> memif_server_socket(const std::string& devargs);

// `devargs` with its socket moved to `inner` (abstract).
std::string with_memif_socket(const std::string& devargs, const std::string& inner);

// A fresh abstract name for memif's private socket (unique in this host).
std::string private_memif_socket_name();

class MemifGuard {
public:
    // Binds `outer` (throws Error if it is taken) and relays every client to
    // memif's listening socket `inner` (abstract), which must exist already.
    MemifGuard(UnixName outer, std::string inner);
    ~MemifGuard();
    MemifGuard(const MemifGuard&) = delete;
    MemifGuard& operator=(const MemifGuard&) = delete;

private:
    void run();

    UnixName outer_;
    std::string inner_;
    UniqueFd listener_, wake_;
    std::thread thread_;
};

}  // namespace rmig::transport::dpdk
