// The guard in front of memif's socket (transport/dpdk/memif_guard), on both
// sides, against stand-ins for memif and its peer on plain UNIX sockets: what
// the guard must do does not need DPDK. memif's side of a client that
// vanished must still take memif's hello; messages cross both ways with the
// file descriptors they carry; the peer's leaving reaches memif only inside
// the hook; only this process may take a client memif's place; the devargs
// are rewritten to the private socket.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <thread>

#include "common/unique_fd.hpp"
#include "transport/dpdk/memif_guard.hpp"

using namespace rmig;
using namespace rmig::transport::dpdk;

namespace {

socklen_t abstract_address(const std::string& name, sockaddr_un& a) {
    a = {};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path + 1, name.data(), name.size());
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

UniqueFd listen_abstract(const std::string& name) {
    sockaddr_un a;
    socklen_t len = abstract_address(name, a);
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len), 0) << std::strerror(errno);
    EXPECT_EQ(::listen(fd.get(), 1), 0);  // memif's backlog
    return fd;
}

UniqueFd connect_abstract(const std::string& name) {
    sockaddr_un a;
    socklen_t len = abstract_address(name, a);
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) return {};
    return fd;
}

bool readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
}

// A 128-byte message (memif's size) with an optional descriptor; its first
// two bytes are memif's message type.
ssize_t send_message(int fd, char tag, int with_fd = -1) {
    char buf[128] = {tag};
    iovec iov{buf, sizeof buf};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
    if (with_fd >= 0) {
        m.msg_control = ctl;
        m.msg_controllen = sizeof ctl;
        cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &with_fd, sizeof(int));
    }
    return ::sendmsg(fd, &m, MSG_NOSIGNAL);
}

// The tag of the next message (0 if none came within 2 s), and its descriptor.
char recv_message(int fd, UniqueFd* got_fd = nullptr) {
    if (!readable(fd, 2000)) return 0;
    char buf[256];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    ssize_t n = ::recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
    if (n != 128) return 0;
    if (cmsghdr* c = CMSG_FIRSTHDR(&m); c && got_fd) {
        int received;
        std::memcpy(&received, CMSG_DATA(c), sizeof(int));
        got_fd->reset(received);
    }
    return buf[0];
}

// An eventfd sent on `from` arrives on `to` as the same eventfd: what is
// written to the received one is read from the sent one.
void expect_descriptor_crosses(int from, int to) {
    UniqueFd ev(::eventfd(0, EFD_CLOEXEC));
    ASSERT_EQ(send_message(from, 'R', ev.get()), 128);
    UniqueFd received;
    EXPECT_EQ(recv_message(to, &received), 'R');
    ASSERT_TRUE(received);
    uint64_t v = 7;
    ASSERT_EQ(::write(received.get(), &v, sizeof v), 8);
    v = 0;
    ASSERT_EQ(::read(ev.get(), &v, sizeof v), 8);
    EXPECT_EQ(v, 7u);
}

// The error constructing a guard gives ("" if it came up).
std::string construction_error(MemifRole role, const std::string& outer, const std::string& inner) {
    try {
        MemifGuard guard(role, {.name = outer, .abstract = true}, inner);
        return "";
    } catch (const std::exception& e) {
        return e.what();
    }
}

// memif's side of the next client the guard brings (invalid if none within 2 s).
UniqueFd accept_at_memif(int memif) {
    if (!readable(memif, 2000)) return {};
    return UniqueFd(::accept4(memif, nullptr, nullptr, SOCK_CLOEXEC));
}

// The other end closed `fd` (within 2 s).
bool closed_by_peer(int fd) {
    char b;
    return readable(fd, 2000) && ::recv(fd, &b, 1, MSG_DONTWAIT) == 0;
}

struct Names {
    std::string outer = private_memif_socket_name() + "-test-outer";
    std::string inner = private_memif_socket_name() + "-test-inner";
};

}  // namespace

TEST(MemifGuard, MemifsSideOfAVanishedClientStillTakesItsHello) {
    Names n;
    UniqueFd memif = listen_abstract(n.inner);
    MemifGuard guard(MemifRole::server, {.name = n.outer, .abstract = true}, n.inner);
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(connect_abstract(n.outer));  // and closed at once
        UniqueFd cc = accept_at_memif(memif.get());
        ASSERT_TRUE(cc) << "client " << i << " never reached memif's socket";
        // The send DPDK's memif aborts the process over when it fails.
        ASSERT_EQ(send_message(cc.get(), 'H'), 128) << "client " << i << ": " << std::strerror(errno);
        // Then the guard closes memif's side: memif sees a disconnect.
        EXPECT_TRUE(closed_by_peer(cc.get()));
    }
}

TEST(MemifGuard, RelaysMessagesAndTheirDescriptorsBothWays) {
    Names n;
    UniqueFd memif = listen_abstract(n.inner);
    MemifGuard guard(MemifRole::server, {.name = n.outer, .abstract = true}, n.inner);
    UniqueFd client = connect_abstract(n.outer);
    ASSERT_TRUE(client);
    UniqueFd cc = accept_at_memif(memif.get());
    ASSERT_EQ(send_message(cc.get(), 'H'), 128);
    EXPECT_EQ(recv_message(client.get()), 'H');

    // A region's or a ring's descriptor, client to memif: the same eventfd.
    expect_descriptor_crosses(client.get(), cc.get());

    // The client leaving is a disconnect at memif.
    client.reset();
    EXPECT_TRUE(closed_by_peer(cc.get()));
}

TEST(MemifGuard, MemifLeavingClosesTheClient) {
    Names n;
    UniqueFd memif = listen_abstract(n.inner);
    MemifGuard guard(MemifRole::server, {.name = n.outer, .abstract = true}, n.inner);
    UniqueFd client = connect_abstract(n.outer);
    UniqueFd cc = accept_at_memif(memif.get());
    ASSERT_EQ(send_message(cc.get(), 'D'), 128);  // e.g. "Already connected", then gone
    cc.reset();
    EXPECT_EQ(recv_message(client.get()), 'D');
    EXPECT_TRUE(closed_by_peer(client.get()));
}

// A stand-in for memif tearing a connection down: on the peer's leaving (its
// close, or a DISCONNECT, type 8) it takes a while, then closes its side.
// `memif` is memif's end of the relayed connection, `peer` the other end.
void expect_leaving_inside_around(MemifGuard& guard, UniqueFd memif, UniqueFd peer, bool by_message) {
    std::atomic<bool> in_around{false}, left_inside_around{false}, memif_closed{false};
    std::atomic<int> arounds{0};
    std::atomic<bool> closed_when_around_returned{false};
    guard.set_around_disconnect([&](const std::function<void()>& leave) {
        in_around = true;
        leave();
        in_around = false;
        closed_when_around_returned = memif_closed.load();
        ++arounds;
    });
    std::thread memif_thread([&] {
        send_message(memif.get(), 'H');
        for (int i = 0; i < 100; ++i) {  // bounded: 100 x 2 s
            char buf[256];
            if (!readable(memif.get(), 2000)) continue;
            ssize_t got = ::recv(memif.get(), buf, sizeof buf, 0);
            if (got == 0 || (got >= 2 && buf[0] == 8 && buf[1] == 0)) break;
        }
        left_inside_around = in_around.load();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // unmapping the rings
        memif_closed = true;
        memif.reset();
    });
    ASSERT_EQ(recv_message(peer.get()), 'H');
    if (by_message)
        ASSERT_EQ(send_message(peer.get(), 8), 128);
    else
        peer.reset();
    memif_thread.join();
    for (int i = 0; i < 300 && arounds == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(arounds, 1);
    EXPECT_TRUE(left_inside_around) << "memif learnt of the leaving outside `around`";
    EXPECT_TRUE(closed_when_around_returned) << "`around` returned before memif's teardown was over";
}

void client_leaving_test(bool by_message) {
    Names n;
    UniqueFd memif = listen_abstract(n.inner);
    MemifGuard guard(MemifRole::server, {.name = n.outer, .abstract = true}, n.inner);
    UniqueFd client = connect_abstract(n.outer);
    ASSERT_TRUE(client);
    UniqueFd cc = accept_at_memif(memif.get());
    ASSERT_TRUE(cc);
    expect_leaving_inside_around(guard, std::move(cc), std::move(client), by_message);
}

TEST(MemifGuard, AClientsCloseReachesMemifInsideAroundUntilItsTeardownIsOver) { client_leaving_test(false); }

TEST(MemifGuard, AClientsDisconnectMessageReachesMemifInsideAroundUntilItsTeardownIsOver) {
    client_leaving_test(true);
}

// The client's side: memif connects to the guard's private socket, the guard
// to the server.
struct ClientSide {
    Names n;
    UniqueFd server_listener = listen_abstract(n.outer);
    MemifGuard guard{MemifRole::client, {.name = n.outer, .abstract = true}, n.inner};
    UniqueFd server = accept_at_memif(server_listener.get());  // the guard connected up front
};

TEST(MemifGuardClient, NoServerIsAClearErrorAtOnce) {
    Names n;
    std::string error = construction_error(MemifRole::client, n.outer, n.inner);
    EXPECT_NE(error.find("start the listening side first"), std::string::npos)
        << "a client guard came up without a server: " << error;
}

TEST(MemifGuardClient, RelaysMessagesAndTheirDescriptorsBothWays) {
    ClientSide c;
    ASSERT_TRUE(c.server);
    ASSERT_EQ(send_message(c.server.get(), 'H'), 128);  // memif's server greets before memif came
    UniqueFd memif = connect_abstract(c.n.inner);
    ASSERT_TRUE(memif);
    EXPECT_EQ(recv_message(memif.get()), 'H');

    expect_descriptor_crosses(memif.get(), c.server.get());  // a region, client to server

    memif.reset();  // memif's own disconnect: the server sees the client go
    EXPECT_TRUE(closed_by_peer(c.server.get()));
}

TEST(MemifGuardClient, AServersCloseReachesMemifInsideAroundUntilItsTeardownIsOver) {
    ClientSide c;
    UniqueFd memif = connect_abstract(c.n.inner);
    ASSERT_TRUE(memif);
    expect_leaving_inside_around(c.guard, std::move(memif), std::move(c.server), false);
}

TEST(MemifGuardClient, AServersDisconnectMessageReachesMemifInsideAroundUntilItsTeardownIsOver) {
    ClientSide c;
    UniqueFd memif = connect_abstract(c.n.inner);
    ASSERT_TRUE(memif);
    expect_leaving_inside_around(c.guard, std::move(memif), std::move(c.server), true);
}

TEST(MemifGuardClient, AnotherProcessCannotTakeMemifsPlace) {
    ClientSide c;
    ASSERT_TRUE(c.server);
    pid_t child = ::fork();
    if (child == 0) {  // a stranger on this host who knows the private name
        UniqueFd s = connect_abstract(c.n.inner);
        char b;
        bool dropped = s && readable(s.get(), 2000) && ::recv(s.get(), &b, 1, 0) == 0;
        ::_exit(dropped ? 0 : 1);
    }
    ASSERT_GT(child, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the stranger was not dropped";
    // memif itself still gets through to the server.
    UniqueFd memif = connect_abstract(c.n.inner);
    ASSERT_TRUE(memif);
    ASSERT_EQ(send_message(memif.get(), 'I'), 128);
    EXPECT_EQ(recv_message(c.server.get()), 'I');
}

TEST(MemifGuard, ASocketTakenIsAClearError) {
    Names n;
    UniqueFd memif = listen_abstract(n.inner);
    MemifGuard first(MemifRole::server, {.name = n.outer, .abstract = true}, n.inner);
    std::string error = construction_error(MemifRole::server, n.outer, n.inner);
    EXPECT_NE(error.find("another memif server"), std::string::npos) << "bound a socket another guard holds: " << error;
}

TEST(MemifGuard, FindsTheRoleAndSocketInTheDevargs) {
    auto s = memif_socket("net_memif0,role=server,socket=/tmp/x.sock");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->role, MemifRole::server);
    EXPECT_EQ(s->name.name, "/tmp/x.sock");
    EXPECT_TRUE(s->name.abstract);
    s = memif_socket("net_memif3,socket=/tmp/y,socket-abstract=no,id=2");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->role, MemifRole::server);  // memif's default role
    EXPECT_EQ(s->name.name, "/tmp/y");
    EXPECT_FALSE(s->name.abstract);
    EXPECT_EQ(memif_socket("net_memif0")->name.name, "/run/memif.sock");
    EXPECT_EQ(memif_socket("net_memif0,role=master")->role, MemifRole::server);
    s = memif_socket("net_memif0,role=client,socket=/tmp/x");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->role, MemifRole::client);
    EXPECT_EQ(s->name.name, "/tmp/x");
    EXPECT_EQ(memif_socket("net_memif0,role=slave")->role, MemifRole::client);
    EXPECT_FALSE(memif_socket("net_af_packet0,iface=veth0"));
    EXPECT_EQ(with_memif_socket("net_memif1,role=server,socket=/tmp/x,socket-abstract=no,id=2", "inner-1"),
              "net_memif1,role=server,id=2,socket=inner-1,socket-abstract=yes");
}
