// The guard in front of a memif server's socket (transport/dpdk/memif_guard),
// against a stand-in for memif's own listener on plain UNIX sockets: what the
// guard must do does not need DPDK. memif's side of a client that vanished
// must still take memif's hello; messages cross both ways with the file
// descriptors they carry; the devargs are rewritten to the private socket.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

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
    MemifGuard guard({.name = n.outer, .abstract = true}, n.inner);
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
    MemifGuard guard({.name = n.outer, .abstract = true}, n.inner);
    UniqueFd client = connect_abstract(n.outer);
    ASSERT_TRUE(client);
    UniqueFd cc = accept_at_memif(memif.get());
    ASSERT_EQ(send_message(cc.get(), 'H'), 128);
    EXPECT_EQ(recv_message(client.get()), 'H');

    // A region's or a ring's descriptor, client to memif: the same eventfd.
    UniqueFd ev(::eventfd(0, EFD_CLOEXEC));
    ASSERT_EQ(send_message(client.get(), 'R', ev.get()), 128);
    UniqueFd at_memif;
    EXPECT_EQ(recv_message(cc.get(), &at_memif), 'R');
    ASSERT_TRUE(at_memif);
    uint64_t v = 7;
    ASSERT_EQ(::write(at_memif.get(), &v, sizeof v), 8);
    v = 0;
    ASSERT_EQ(::read(ev.get(), &v, sizeof v), 8);
    EXPECT_EQ(v, 7u);

    // The client leaving is a disconnect at memif.
    client.reset();
    EXPECT_TRUE(closed_by_peer(cc.get()));
}

TEST(MemifGuard, MemifLeavingClosesTheClient) {
    Names n;
    UniqueFd memif = listen_abstract(n.inner);
    MemifGuard guard({.name = n.outer, .abstract = true}, n.inner);
    UniqueFd client = connect_abstract(n.outer);
    UniqueFd cc = accept_at_memif(memif.get());
    ASSERT_EQ(send_message(cc.get(), 'D'), 128);  // e.g. "Already connected", then gone
    cc.reset();
    EXPECT_EQ(recv_message(client.get()), 'D');
    EXPECT_TRUE(closed_by_peer(client.get()));
}

// A stand-in for memif tearing a connection down: on the client's leaving
// (its close, or a DISCONNECT, type 8) it takes a while, then closes its side.
void leaving_test(bool by_message) {
    Names n;
    UniqueFd memif = listen_abstract(n.inner);
    MemifGuard guard({.name = n.outer, .abstract = true}, n.inner);
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
    UniqueFd client = connect_abstract(n.outer);
    ASSERT_TRUE(client);
    UniqueFd cc = accept_at_memif(memif.get());
    ASSERT_TRUE(cc);
    std::thread memif_thread([&] {
        send_message(cc.get(), 'H');
        for (int i = 0; i < 100; ++i) {  // bounded: 100 x 2 s
            char buf[256];
            if (!readable(cc.get(), 2000)) continue;
            ssize_t got = ::recv(cc.get(), buf, sizeof buf, 0);
            if (got == 0 || (got >= 2 && buf[0] == 8 && buf[1] == 0)) break;
        }
        left_inside_around = in_around.load();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // unmapping the rings
        memif_closed = true;
        cc.reset();
    });
    ASSERT_EQ(recv_message(client.get()), 'H');
    if (by_message)
        ASSERT_EQ(send_message(client.get(), 8), 128);
    else
        client.reset();
    memif_thread.join();
    for (int i = 0; i < 300 && arounds == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(arounds, 1);
    EXPECT_TRUE(left_inside_around) << "memif learnt of the leaving outside `around`";
    EXPECT_TRUE(closed_when_around_returned) << "`around` returned before memif's teardown was over";
}

TEST(MemifGuard, AClientsCloseReachesMemifInsideAroundUntilItsTeardownIsOver) { leaving_test(false); }

TEST(MemifGuard, AClientsDisconnectMessageReachesMemifInsideAroundUntilItsTeardownIsOver) { leaving_test(true); }

TEST(MemifGuard, ASocketTakenIsAClearError) {
    Names n;
    UniqueFd memif = listen_abstract(n.inner);
    MemifGuard first({.name = n.outer, .abstract = true}, n.inner);
    try {
        MemifGuard second({.name = n.outer, .abstract = true}, n.inner);
        FAIL() << "bound a socket another guard holds";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("another memif server"), std::string::npos) << e.what();
    }
}

TEST(MemifGuard, FindsAServersSocketInItsDevargs) {
    auto s = memif_server_socket("net_memif0,role=server,socket=/tmp/x.sock");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->name, "/tmp/x.sock");
    EXPECT_TRUE(s->abstract);
    s = memif_server_socket("net_memif3,socket=/tmp/y,socket-abstract=no,id=2");
    ASSERT_TRUE(s);  // memif's default role is server
    EXPECT_EQ(s->name, "/tmp/y");
    EXPECT_FALSE(s->abstract);
    EXPECT_EQ(memif_server_socket("net_memif0")->name, "/run/memif.sock");
    EXPECT_TRUE(memif_server_socket("net_memif0,role=master"));
    EXPECT_FALSE(memif_server_socket("net_memif0,role=client,socket=/tmp/x"));
    EXPECT_FALSE(memif_server_socket("net_memif0,role=slave"));
    EXPECT_FALSE(memif_server_socket("net_af_packet0,iface=veth0"));
    EXPECT_EQ(with_memif_socket("net_memif1,role=server,socket=/tmp/x,socket-abstract=no,id=2", "inner-1"),
              "net_memif1,role=server,id=2,socket=inner-1,socket-abstract=yes");
}
