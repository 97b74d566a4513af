// rdma/ backend against a real RDMA device: Soft-RoCE (rxe) inside the test VM
// (tests/rdma/vm/run-in-vm.sh), or real hardware. RMIG_RDMA_ADDR names the IP
// of the device's interface (the VM's rxe0 sits on 10.11.12.1). What only rdma
// has: bulk over four channels, credits, one-sided writes over 32 MiB of
// mmap'd memory (registration cache), rkey errors, one-sided reads (pages at
// any offset, past the end, next to frames both ways, bad keys, a peer gone),
// rdma_cm private data,
// memlock, killed peers, port down. What every Channel must do (handshake,
// refusals, frame sizes, order, both directions, shutdown) is the conformance
// suite's (tests/transport/conformance, channel_conformance_in_softroce_vm).
//
// The binary doubles as the "peer" process for the kill tests:
//   rdma_transport_test --peer-sender ADDR:PORT   streams data until killed
#include <gtest/gtest.h>
#include <rdma/rdma_cma.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/syscall.h>
#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <thread>

#include "common/error.hpp"
#include "common/process.hpp"
#include "transport/channel.hpp"
#include "transport/rdma/rdma_backend.hpp"
#include "transport/rdma/rdma_errors.hpp"

using namespace rmig;
using namespace rmig::transport;
using wire::FrameType;
using std::chrono::milliseconds;

namespace {

std::string g_self;  // path of this binary

std::string device_addr() {
    const char* a = std::getenv("RMIG_RDMA_ADDR");
    return a ? a : "10.11.12.1";
}

bool have_device() {
    int n = 0;
    ibv_device** l = ibv_get_device_list(&n);
    if (l) ibv_free_device_list(l);
    return n > 0;
}

wire::Hello hello_for(const wire::SessionId& s, uint32_t id, uint32_t count) {
    wire::Hello h;
    h.kind = wire::ChannelKind::data;
    h.session = s;
    h.channel_id = id;
    h.channel_count = count;
    return h;
}

void fill(std::byte* p, size_t n, uint32_t ch, uint64_t off) {
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = (uint64_t(ch) << 56) ^ ((off + i) * 0x9e3779b97f4a7c15ULL);
        std::memcpy(p + i, &v, std::min<size_t>(8, n - i));
    }
}

template <class F> std::string error_of(F fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no error)";
}

struct RdmaTest : ::testing::Test {
    void SetUp() override {
        if (!have_device())
            GTEST_SKIP() << "no RDMA device on this machine; these tests run inside the Soft-RoCE VM "
                            "(tests/rdma/vm/run-in-vm.sh) or on RDMA hardware";
        listener = listen("rdma:" + device_addr() + ":0", opts);
    }
    std::unique_ptr<Channel> accept_one() {
        auto in = listener->next(milliseconds(10000));
        if (!in) throw Error("no RDMA connection within 10 s");
        wire::Hello r = in->hello();
        r.role = wire::Role::destination;
        return in->accept(r);
    }
    std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> pair(uint32_t id = 1, uint32_t n = 1) {
        auto fut = std::async(std::launch::async, [&] { return accept_one(); });
        auto c = connect(listener->address(), hello_for(session, id, n), opts);
        return {std::move(c), fut.get()};
    }
    Options opts;
    std::unique_ptr<Listener> listener;
    wire::SessionId session = wire::random_session_id();
};

}  // namespace

TEST_F(RdmaTest, FourChannelsMove256MiBWithEveryByteVerified) {
    constexpr uint32_t kChannels = 4;
    constexpr size_t kFrame = 1 << 20, kPerChannel = 64u << 20;
    std::vector<std::unique_ptr<Channel>> clients, servers;
    for (uint32_t c = 1; c <= kChannels; ++c) {
        auto [cl, sv] = pair(c, kChannels);
        clients.push_back(std::move(cl));
        servers.push_back(std::move(sv));
    }
    std::vector<std::future<std::string>> receivers;
    for (uint32_t c = 0; c < kChannels; ++c)
        receivers.push_back(std::async(std::launch::async, [&, c]() -> std::string {
            std::vector<std::byte> got, want;
            size_t total = 0;
            for (;;) {
                if (servers[c]->recv(got) == FrameType::end) break;
                want.resize(got.size());
                fill(want.data(), want.size(), c + 1, total);
                if (got != want) return cat("channel ", c + 1, " differs at ", total);
                total += got.size();
            }
            return total == kPerChannel ? "" : cat("channel ", c + 1, " got ", total, " bytes");
        }));
    std::vector<std::thread> senders;
    for (uint32_t c = 0; c < kChannels; ++c)
        senders.emplace_back([&, c] {
            std::vector<std::byte> buf(kFrame);
            for (size_t off = 0; off < kPerChannel; off += kFrame) {
                fill(buf.data(), buf.size(), c + 1, off);
                clients[c]->send(FrameType::data, buf);
            }
            clients[c]->send(FrameType::end, {});
        });
    for (auto& t : senders) t.join();
    for (auto& r : receivers) EXPECT_EQ(r.get(), "");
}

TEST_F(RdmaTest, CreditExhaustionStallsTheSenderAndRecovers) {
    auto [client, server] = pair();
    const uint32_t slots = transport::rdma::rdma_options(opts.tuning).ring_slots;
    const uint64_t total = 3 * slots;
    std::atomic<uint64_t> sent{0};
    // The acceptor sends: it holds exactly `slots` credits for the client's ring.
    std::thread sender([&] {
        std::vector<std::byte> buf(4096);
        for (uint64_t i = 0; i < total; ++i) {
            fill(buf.data(), buf.size(), 9, i);
            server->send(FrameType::data, buf);
            ++sent;
        }
    });
    std::this_thread::sleep_for(milliseconds(1500));  // the receiver is not reading
    EXPECT_EQ(sent.load(), slots) << "the sender must stop when the receiver's ring is full";
    std::vector<std::byte> got, want(4096);
    for (uint64_t i = 0; i < total; ++i) {
        ASSERT_EQ(client->recv(got), FrameType::data);
        fill(want.data(), want.size(), 9, i);
        ASSERT_EQ(got, want) << "frame " << i;
    }
    sender.join();
    EXPECT_EQ(sent.load(), total);
}

TEST_F(RdmaTest, OneSidedPageWritesLandWhereTheyShould) {
    auto [client, server] = pair();
    constexpr size_t kSize = 32u << 20, kPage = 4096;
    auto* dst = static_cast<std::byte*>(::mmap(nullptr, kSize, PROT_READ | PROT_WRITE,
                                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    auto* src = static_cast<std::byte*>(::mmap(nullptr, kSize, PROT_READ | PROT_WRITE,
                                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(dst, MAP_FAILED);
    ASSERT_NE(src, MAP_FAILED);
    fill(src, kSize, 5, 0);
    RemoteRegion region = server->one_sided()->expose(dst, kSize);
    // Every third page, plus one contiguous run that gets merged.
    std::vector<RegionWrite> pieces;
    std::vector<bool> written(kSize / kPage);
    for (size_t p = 0; p < kSize / kPage; p += 3) pieces.push_back({src + p * kPage, kPage, p * kPage});
    for (size_t p = 1000; p < 1100; ++p)
        if (p % 3) pieces.push_back({src + p * kPage, kPage, p * kPage});
    std::sort(pieces.begin(), pieces.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
    for (auto& w : pieces) written[w.offset / kPage] = true;
    client->one_sided()->write(region, pieces);
    client->one_sided()->flush();
    client->send(FrameType::control, {});  // the round barrier
    std::vector<std::byte> got;
    ASSERT_EQ(server->recv(got), FrameType::control);
    size_t bad = 0;
    std::vector<std::byte> zero(kPage);
    for (size_t p = 0; p < kSize / kPage; ++p) {
        const std::byte* want = written[p] ? src + p * kPage : zero.data();
        if (std::memcmp(dst + p * kPage, want, kPage) != 0) ++bad;
    }
    EXPECT_EQ(bad, 0u) << "pages wrong after flush";
    RegionWrite past{src, kPage, kSize - 100};
    auto msg = error_of([&] { client->one_sided()->write(region, std::span(&past, 1)); });
    EXPECT_NE(msg.find("runs past"), std::string::npos) << msg;
    ::munmap(dst, kSize);
    ::munmap(src, kSize);
}

TEST_F(RdmaTest, RemoteAccessErrorIsNamed) {
    auto [client, server] = pair();
    std::vector<std::byte> dst(1 << 20), src(4096, std::byte{7});
    RemoteRegion region = server->one_sided()->expose(dst.data(), dst.size());
    region.rkey ^= 0x5a5a;  // a key the peer never handed out
    RegionWrite w{src.data(), src.size(), 0};
    auto msg = error_of([&] {
        client->one_sided()->write(region, std::span(&w, 1));
        client->one_sided()->flush();
    });
    EXPECT_NE(msg.find("rejected the remote address or key"), std::string::npos) << msg;
}

namespace {

// mmap'd like guest memory; never touched until the caller writes it.
struct Mapping {
    explicit Mapping(size_t n) : size(n) {
        void* m = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) throw Error("mmap failed");
        p = static_cast<std::byte*>(m);
    }
    ~Mapping() { ::munmap(p, size); }
    std::byte* p;
    size_t size;
};

// What `fn` threw: "Error: ...", "LinkError: ...", or "(no error)".
template <class F> std::string kind_of_error(F fn) {
    try {
        fn();
    } catch (const LinkError& e) {
        return cat("LinkError: ", e.what());
    } catch (const Error& e) {
        return cat("Error: ", e.what());
    }
    return "(no error)";
}

}  // namespace

TEST_F(RdmaTest, OneSidedReadsFetchPagesAtAnyOffset) {
    auto [client, server] = pair();
    ASSERT_TRUE(client->one_sided()->can_read());
    ASSERT_TRUE(server->one_sided()->can_read());
    constexpr size_t kSize = 8u << 20, kPage = 4096;
    Mapping src(kSize);
    // Exposed before a byte of it is written: the registration must follow the
    // pages the process then writes (no stale zero page).
    RemoteRegion region = server->one_sided()->expose_for_read(src.p, kSize);
    EXPECT_EQ(region.size, kSize);
    fill(src.p, kSize, 3, 0);
    OneSided& os = *client->one_sided();
    // One page per fault, into the same staging buffer, as post-copy does.
    std::vector<std::byte> page(kPage);
    for (size_t pg : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}, kSize / kPage / 2, kSize / kPage - 1}) {
        std::fill(page.begin(), page.end(), std::byte{0xee});
        os.read(region, pg * kPage, page.data(), kPage);
        ASSERT_EQ(std::memcmp(page.data(), src.p + pg * kPage, kPage), 0) << "page " << pg;
    }
    // Several pages at once, and an unaligned piece.
    std::vector<std::byte> run(64 << 10), odd(100);
    os.read(region, 300 * kPage, run.data(), run.size());
    EXPECT_EQ(std::memcmp(run.data(), src.p + 300 * kPage, run.size()), 0);
    os.read(region, 12345, odd.data(), odd.size());
    EXPECT_EQ(std::memcmp(odd.data(), src.p + 12345, odd.size()), 0);
    // A page rewritten after registration reads back new.
    std::memset(src.p + 42 * kPage, 0x5c, kPage);
    os.read(region, 42 * kPage, page.data(), kPage);
    EXPECT_EQ(page, std::vector<std::byte>(kPage, std::byte{0x5c}));
    // Past the end: refused before anything is posted; the channel goes on.
    for (auto [off, len] : {std::pair<uint64_t, size_t>{kSize - kPage + 1, kPage}, {kSize, 1},
                            {kSize + kPage, kPage}, {~uint64_t{0} - 10, kPage}}) {
        auto msg = kind_of_error([&] { os.read(region, off, page.data(), len); });
        EXPECT_EQ(msg.rfind("Error: ", 0), 0u) << msg;
        EXPECT_NE(msg.find("runs past the peer's"), std::string::npos) << msg;
        EXPECT_NE(msg.find(cat("offset ", off)), std::string::npos) << msg;
    }
    os.read(region, kSize, page.data(), 0);  // empty, at the end: nothing to do
    client->send(FrameType::control, {});
    std::vector<std::byte> got;
    EXPECT_EQ(server->recv(got), FrameType::control);
    os.read(region, (kSize / kPage - 1) * kPage, page.data(), kPage);
    EXPECT_EQ(std::memcmp(page.data(), src.p + kSize - kPage, kPage), 0);
}

TEST_F(RdmaTest, ReadsRunWhileFramesFlowBothWays) {
    auto [client, server] = pair();
    constexpr size_t kSize = 16u << 20, kPage = 4096, kReads = 600, kFrames = 200, kFrame = 64 << 10;
    Mapping src(kSize);
    fill(src.p, kSize, 4, 0);
    // The acceptor reads here (the destination of memory mode usually accepts).
    RemoteRegion region = client->one_sided()->expose_for_read(src.p, kSize);
    auto reader = [&, region](uint64_t seed) -> std::string {
        std::vector<std::byte> page(kPage);
        for (size_t i = 0; i < kReads; ++i) {
            size_t pg = ((i + seed) * 2654435761u) % (kSize / kPage);
            server->one_sided()->read(region, pg * kPage, page.data(), kPage);
            if (std::memcmp(page.data(), src.p + pg * kPage, kPage) != 0) return cat("page ", pg, " differs");
        }
        return "";
    };
    auto stream = [&](Channel& from, Channel& to, uint32_t tag) {
        auto rx = std::async(std::launch::async, [&to, tag]() -> std::string {
            std::vector<std::byte> got, want(kFrame);
            for (size_t i = 0; i < kFrames; ++i) {
                if (to.recv(got) != FrameType::data) return "not a data frame";
                fill(want.data(), want.size(), tag, i);
                if (got != want) return cat("frame ", i, " differs");
            }
            return "";
        });
        auto tx = std::async(std::launch::async, [&from, tag] {
            std::vector<std::byte> buf(kFrame);
            for (size_t i = 0; i < kFrames; ++i) {
                fill(buf.data(), buf.size(), tag, i);
                from.send(FrameType::data, buf);
            }
        });
        return std::make_pair(std::move(tx), std::move(rx));
    };
    auto r1 = std::async(std::launch::async, reader, 1);
    auto r2 = std::async(std::launch::async, reader, 77);
    auto up = stream(*client, *server, 1);
    auto down = stream(*server, *client, 2);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
    bool hung = false;
    for (auto* f : {&r1, &r2, &up.second, &down.second})
        hung = hung || f->wait_until(deadline) != std::future_status::ready;
    for (auto* f : {&up.first, &down.first})  // a receiver that gave up leaves its sender stalled
        hung = hung || f->wait_for(std::chrono::seconds(5)) != std::future_status::ready;
    if (hung) {  // free every blocked thread, then fail
        client->shutdown();
        server->shutdown();
        FAIL() << "reads or frames hang";
    }
    EXPECT_EQ(r1.get(), "");
    EXPECT_EQ(r2.get(), "");
    EXPECT_EQ(up.second.get(), "");
    EXPECT_EQ(down.second.get(), "");
    up.first.get();
    down.first.get();
}

TEST_F(RdmaTest, StartedReadsKeepSeveralInFlightAndEachLandsWhole) {
    auto [client, server] = pair();
    constexpr size_t kSize = 8u << 20, kRead = 64u << 10, kDepth = 16;
    Mapping src(kSize), dst(kSize);
    RemoteRegion region = server->one_sided()->expose_for_read(src.p, kSize);
    fill(src.p, kSize, 5, 0);
    OneSided& os = *client->one_sided();
    os.register_local(dst.p, kSize);
    // As post-copy's pull does: up to 16 in flight, the oldest waited for.
    std::deque<uint64_t> tickets;
    for (size_t off = 0; off < kSize; off += kRead) {
        if (tickets.size() == kDepth) {
            os.wait_read(tickets.front());
            tickets.pop_front();
        }
        tickets.push_back(os.start_read(region, off, dst.p + off, kRead));
    }
    while (!tickets.empty()) {
        os.wait_read(tickets.front());
        tickets.pop_front();
    }
    EXPECT_EQ(std::memcmp(src.p, dst.p, kSize), 0);
    // Waited for out of order: each still lands whole.
    std::memset(dst.p, 0, 3 * kRead);
    uint64_t a = os.start_read(region, 5 * kRead, dst.p, kRead);
    uint64_t b = os.start_read(region, 9 * kRead, dst.p + kRead, kRead);
    uint64_t c = os.start_read(region, 2 * kRead, dst.p + 2 * kRead, kRead);
    os.wait_read(c);
    os.wait_read(a);
    os.wait_read(b);
    EXPECT_EQ(std::memcmp(dst.p, src.p + 5 * kRead, kRead), 0);
    EXPECT_EQ(std::memcmp(dst.p + kRead, src.p + 9 * kRead, kRead), 0);
    EXPECT_EQ(std::memcmp(dst.p + 2 * kRead, src.p + 2 * kRead, kRead), 0);
    // Refused before anything is posted: past the end, empty; and a ticket
    // that was never handed out. The channel goes on.
    auto past = kind_of_error([&] { os.start_read(region, kSize - 4096, dst.p, 8192); });
    EXPECT_EQ(past.rfind("Error: ", 0), 0u) << past;
    EXPECT_NE(past.find("runs past the peer's"), std::string::npos) << past;
    auto empty = kind_of_error([&] { os.start_read(region, 0, dst.p, 0); });
    EXPECT_EQ(empty.rfind("Error: ", 0), 0u) << empty;
    auto never = kind_of_error([&] { os.wait_read(c + 1000); });
    EXPECT_EQ(never.rfind("Error: ", 0), 0u) << never;
    client->send(FrameType::control, {});
    std::vector<std::byte> got;
    EXPECT_EQ(server->recv(got), FrameType::control);
    // A started read the peer refuses (a key it never handed out) fails at
    // its wait, as an Error; the channel is down afterwards.
    RemoteRegion bad = region;
    bad.rkey ^= 0x5a5a;
    uint64_t t = os.start_read(bad, 0, dst.p, 4096);
    auto refused = kind_of_error([&] { os.wait_read(t); });
    EXPECT_EQ(refused.rfind("Error: rdma channel", 0), 0u) << refused;
    EXPECT_NE(refused.find("rejected the remote address or key"), std::string::npos) << refused;
    auto after = kind_of_error([&] { os.start_read(region, 0, dst.p, 4096); });
    EXPECT_EQ(after.rfind("LinkError: ", 0), 0u) << after;
}

TEST_F(RdmaTest, ReadWithAWrongKeyIsAnErrorNamingTheOffset) {
    {
        auto [client, server] = pair();
        std::vector<std::byte> src(1 << 20, std::byte{9}), page(4096);
        RemoteRegion region = server->one_sided()->expose_for_read(src.data(), src.size());
        region.rkey ^= 0x5a5a;  // a key the peer never handed out
        auto msg = kind_of_error([&] { client->one_sided()->read(region, 8192, page.data(), page.size()); });
        std::cout << "bad rkey: " << msg << "\n";
        EXPECT_EQ(msg.rfind("Error: rdma channel", 0), 0u) << msg;
        EXPECT_NE(msg.find("at offset 8192"), std::string::npos) << msg;
        EXPECT_NE(msg.find("rejected the remote address or key"), std::string::npos) << msg;
        // The failed READ took the queue pair down: the channel says so after.
        auto after = kind_of_error([&] { client->send(FrameType::control, {}); });
        EXPECT_EQ(after.rfind("LinkError: ", 0), 0u) << after;
        auto again = kind_of_error([&] { client->one_sided()->read(region, 0, page.data(), page.size()); });
        EXPECT_EQ(again.rfind("LinkError: ", 0), 0u) << again;
        // What the side that refused the read sees (rxe puts its queue pair in
        // error too, which flushes its receives); informational.
        auto peer = std::async(std::launch::async, [&] {
            std::vector<std::byte> got;
            return kind_of_error([&] { server->recv(got); });
        });
        if (peer.wait_for(std::chrono::seconds(10)) != std::future_status::ready) server->shutdown();
        std::cout << "the refusing peer's recv: " << peer.get() << "\n";
    }
    {
        // A region exposed for writes only is not readable.
        auto [client, server] = pair();
        std::vector<std::byte> dst(1 << 20), page(4096);
        RemoteRegion region = server->one_sided()->expose(dst.data(), dst.size());
        auto msg = kind_of_error([&] { client->one_sided()->read(region, 0, page.data(), page.size()); });
        std::cout << "write-only region: " << msg << "\n";
        EXPECT_EQ(msg.rfind("Error: rdma channel", 0), 0u) << msg;
        EXPECT_NE(msg.find("at offset 0"), std::string::npos) << msg;
    }
}

TEST_F(RdmaTest, ReadFromAPeerThatWentAwayIsALinkError) {
    auto [client, server] = pair();
    std::vector<std::byte> src(1 << 20, std::byte{1}), page(4096);
    RemoteRegion region = server->one_sided()->expose_for_read(src.data(), src.size());
    client->one_sided()->read(region, 0, page.data(), page.size());
    server.reset();
    auto t0 = std::chrono::steady_clock::now();
    auto res = std::async(std::launch::async, [&] {
        return kind_of_error([&] {
            for (int i = 0; i < 100000; ++i) client->one_sided()->read(region, 4096, page.data(), page.size());
        });
    });
    if (res.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
        client->shutdown();  // frees the reader
        FAIL() << "the reader hangs";
    }
    auto msg = res.get();
    std::cout << "reader saw after "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s: " << msg
              << "\n";
    EXPECT_EQ(msg.rfind("LinkError: ", 0), 0u) << msg;
}

TEST_F(RdmaTest, BadPrivateDataIsRefusedAndTheListenerGoesOn) {
    auto fut = std::async(std::launch::async, [&] { return accept_one(); });
    {
        // A raw rdma_cm client whose private data is not an rmig hello.
        auto ch = rdma::make_event_channel();
        rdma_cm_id* id = nullptr;
        ASSERT_EQ(rdma_create_id(ch.get(), &id, nullptr, RDMA_PS_TCP), 0);
        rdma::CmId owned(id);
        auto hp = listener->address().substr(5);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(static_cast<uint16_t>(std::stoi(hp.substr(hp.rfind(':') + 1))));
        inet_pton(AF_INET, device_addr().c_str(), &sa.sin_addr);
        ASSERT_EQ(rdma_resolve_addr(id, nullptr, reinterpret_cast<sockaddr*>(&sa), 2000), 0);
        ASSERT_EQ(rdma::next_cm_event(ch.get(), 5000)->event, RDMA_CM_EVENT_ADDR_RESOLVED);
        ASSERT_EQ(rdma_resolve_route(id, 2000), 0);
        ASSERT_EQ(rdma::next_cm_event(ch.get(), 5000)->event, RDMA_CM_EVENT_ROUTE_RESOLVED);
        ibv_qp_init_attr attr{};
        attr.qp_type = IBV_QPT_RC;
        attr.cap.max_send_wr = attr.cap.max_recv_wr = 1;
        attr.cap.max_send_sge = attr.cap.max_recv_sge = 1;
        ASSERT_EQ(rdma_create_qp(id, nullptr, &attr), 0);
        char junk[56];
        std::memset(junk, 'x', sizeof junk);
        rdma_conn_param p{};
        p.private_data = junk;
        p.private_data_len = sizeof junk;
        ASSERT_EQ(rdma_connect(id, &p), 0);
        auto ev = rdma::next_cm_event(ch.get(), 10000);
        ASSERT_TRUE(ev);
        EXPECT_EQ(ev->event, RDMA_CM_EVENT_REJECTED) << rdma_event_str(ev->event);
    }
    auto good = connect(listener->address(), hello_for(session, 2, 2), opts);
    EXPECT_EQ(fut.get()->peer_hello().channel_id, 2u);
}

TEST_F(RdmaTest, ConnectingToAPortWithoutListenerSaysSo) {
    auto port = listener->address().substr(listener->address().rfind(':') + 1);
    listener.reset();
    auto msg = error_of([&] { connect("rdma:" + device_addr() + ":" + port, hello_for(session, 1, 1), opts); });
    EXPECT_NE(msg.find("rejected the RDMA connection"), std::string::npos) << msg;
}

TEST_F(RdmaTest, UnreachableAddressIsExplained) {
    Options fast = opts;
    fast.connect_timeout = milliseconds(3000);
    auto msg = error_of([&] { connect("rdma:192.0.2.1:7000", hello_for(session, 1, 1), fast); });
    EXPECT_TRUE(msg.find("not reachable from any local RDMA device") != std::string::npos ||
                msg.find("no RDMA route") != std::string::npos || msg.find("no answer") != std::string::npos)
        << msg;
}

TEST_F(RdmaTest, MemlockLimitTooLowNamesTheUlimit) {
    std::string log = "/tmp/rmig-rdma-memlock.log";
    Process child({g_self, "--peer-memlock", listener->address()}, {log, "=stdout"});
    auto code = child.wait_for(milliseconds(20000));
    ASSERT_TRUE(code);
    std::ifstream in(log);
    std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(*code, 0) << out;
}

TEST_F(RdmaTest, PeerKilledMidTransferEndsTheSurvivorCleanly) {
    Process child({g_self, "--peer-sender", listener->address()}, {"/tmp/rmig-rdma-peer.log", "=stdout"});
    auto server = accept_one();
    std::vector<std::byte> got;
    for (int i = 0; i < 20; ++i) ASSERT_EQ(server->recv(got), FrameType::data);
    child.signal(SIGKILL);
    auto t0 = std::chrono::steady_clock::now();
    auto res = std::async(std::launch::async, [&] {
        return error_of([&] {
            for (int i = 0; i < 1000000; ++i) server->recv(got);
        });
    });
    ASSERT_EQ(res.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "survivor hangs";
    auto msg = res.get();
    EXPECT_NE(msg, "(no error)");
    std::cout << "survivor saw after "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
              << " s: " << msg << "\n";
    // And a sender whose receiver dies also ends.
    Process child2({g_self, "--peer-receiver", listener->address()}, {"/tmp/rmig-rdma-peer2.log", "=stdout"});
    auto s2 = accept_one();
    std::vector<std::byte> buf(256 << 10);
    for (int i = 0; i < 20; ++i) s2->send(FrameType::data, buf);
    child2.signal(SIGKILL);
    auto res2 = std::async(std::launch::async, [&] {
        return error_of([&] {
            for (int i = 0; i < 1000000; ++i) s2->send(FrameType::data, buf);
        });
    });
    ASSERT_EQ(res2.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "sender hangs";
    EXPECT_NE(res2.get(), "(no error)");
}

// Last on purpose: it takes the VM's RDMA link down and up again.
TEST_F(RdmaTest, PortDownIsExplained) {
    if (!std::getenv("RMIG_VM"))
        GTEST_SKIP() << "would take a real RDMA link down; runs only inside the test VM";
    listener.reset();
    ASSERT_EQ(std::system("ip link set d0 down"), 0);
    auto msg = error_of([&] { listen("rdma:" + device_addr() + ":0", opts); });
    auto msg2 = error_of([&] { connect("rdma:" + device_addr() + ":7471", hello_for(session, 1, 1), opts); });
    ASSERT_EQ(std::system("ip link set d0 up"), 0);
    for (int i = 0; i < 100 && error_of([&] { listen("rdma:" + device_addr() + ":0", opts); }) != "(no error)"; ++i)
        std::this_thread::sleep_for(milliseconds(50));
    // Down, the address leaves the RDMA device (listen fails) or the port is
    // reported DOWN; either way the message must say what to check.
    for (auto* m : {&msg, &msg2})
        EXPECT_TRUE(m->find("not ACTIVE") != std::string::npos || m->find("rdma link") != std::string::npos)
            << *m;
}

namespace {

int peer_main(const std::string& mode, const std::string& addr) {
    Options o;
    wire::Hello h = hello_for(wire::random_session_id(), 1, 1);
    if (mode == "--peer-memlock") {
        rlimit rl{64 << 10, 64 << 10};
        setrlimit(RLIMIT_MEMLOCK, &rl);
        // Root ignores the limit through CAP_IPC_LOCK: drop it, as an ordinary
        // user would not have it.
        __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct caps[2]{};
        syscall(SYS_capget, &hdr, caps);
        caps[0].effective &= ~(1u << CAP_IPC_LOCK);
        caps[0].permitted &= ~(1u << CAP_IPC_LOCK);
        if (syscall(SYS_capset, &hdr, caps) != 0) return 4;
        auto msg = error_of([&] { connect(addr, h, o); });
        std::cout << msg << "\n";
        return msg.find("ulimit -l") != std::string::npos ? 0 : 1;
    }
    auto ch = connect(addr, h, o);
    std::vector<std::byte> buf(256 << 10, std::byte{1});
    if (mode == "--peer-sender")
        for (;;) ch->send(FrameType::data, buf);
    for (;;) ch->recv(buf);
}

}  // namespace

int main(int argc, char** argv) {
    g_self = argv[0];
    if (argc == 3 && std::string(argv[1]).rfind("--peer-", 0) == 0) {
        try {
            return peer_main(argv[1], argv[2]);
        } catch (const std::exception& e) {
            std::cerr << "peer: " << e.what() << "\n";
            return 3;
        }
    }
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
