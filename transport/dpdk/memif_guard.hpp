// A guard in front of memif's control socket, on either side.
//
// Server: DPDK's memif server (22.11 and later) aborts the whole process when
// its hello to a just-accepted client fails ("PANIC in eal_intr_thread_main:
// Error adding fd ... epoll_ctl"): it closes the socket but leaves it
// registered with the EAL's interrupt thread. A client that vanishes before
// that hello is enough: a source that gave up while the destination was
// stopped, or any local process that connects and closes. So rmig binds the
// socket the user named itself, and hands memif a private abstract socket
// instead; the guard relays each client's control messages (with the file
// descriptors they carry: memif's regions and interrupt eventfds) to memif,
// and keeps memif's side of a vanished client open until memif has said its
// hello.
//
// Both sides: memif tears a connection down (unmaps its rings) on its own
// thread as soon as the peer leaves, under the feet of a poller inside an rx
// or tx burst (SIGSEGV). The guard holds the peer's leaving until the pollers
// are kept out (set_around_disconnect). A client's memif therefore connects
// to a private socket of the guard, which connects to the server for it.
//
// Data never passes through the guard; it flows in the shared memory the
// relayed descriptors name.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"

namespace rmig::transport::dpdk {

// A UNIX socket name: a path, or a name in the abstract namespace.
struct UnixName {
    std::string name;
    bool abstract = true;  // memif's default (socket-abstract=yes)
};

enum class MemifRole { server, client };

struct MemifSocket {
    MemifRole role;
    UnixName name;
};

// The role and socket a memif port's devargs name ("net_memif0,role=server,
// socket=/x.sock[,socket-abstract=no]"); nullopt for another driver.
std::optional<MemifSocket> memif_socket(const std::string& devargs);

// `devargs` with its socket moved to `inner` (abstract).
std::string with_memif_socket(const std::string& devargs, const std::string& inner);

// A fresh abstract name for memif's private socket (unique in this host).
std::string private_memif_socket_name();

class MemifGuard {
public:
    // Server: binds `outer` (throws Error if it is taken) and relays every
    // client to memif's listening socket `inner` (abstract), which must exist
    // before the first client comes.
    // Client: connects to the server at `outer` (throws Error if none
    // listens) and binds `inner` (abstract), where memif connects (only this
    // process is let in), relaying memif to the server.
    MemifGuard(MemifRole role, UnixName outer, std::string inner);
    ~MemifGuard();
    MemifGuard(const MemifGuard&) = delete;
    MemifGuard& operator=(const MemifGuard&) = delete;

    // The peer's leaving (its close, its DISCONNECT message) is passed on to
    // memif inside `around`, which keeps the pollers out of their bursts, and
    // `around` returns only once memif has finished its teardown (it closed
    // its side). Without one, the leaving is passed on as it comes.
    using Around = std::function<void(const std::function<void()>&)>;
    void set_around_disconnect(Around around);

    // Stops relaying (idempotent), holding every connection as it is: what
    // the port's own teardown needs, as memif must not tear a connection
    // down on its thread while the port closes it. The destructor closes them.
    void freeze();

    struct Relay;

private:
    void run();
    void pass_on_leaving(Relay& r, const std::function<void()>& act);

    MemifRole role_;
    UnixName outer_;
    std::string inner_;
    UniqueFd listener_, wake_;
    UniqueFd server_;  // client: the connection made up front, until memif comes
    std::mutex around_mu_;
    Around around_;
    std::vector<Relay> relays_;  // the guard thread's until freeze()
    std::thread thread_;
};

}  // namespace rmig::transport::dpdk
