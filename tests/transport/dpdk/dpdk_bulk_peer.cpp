// rmig_dpdk_bulk_peer: one side of a dpdk bulk transfer, run as two processes
// by dpdk_transport_test (memif, af_packet in network namespaces) and by
// bench/scripts/dpdk_vs_testpmd.sh. The client sends BYTES over CHANNELS
// channels in 256 KiB frames of deterministic content; the server verifies
// every byte and answers with what it counted. Prints one JSON line.
//
//   rmig_dpdk_bulk_peer server URI CHANNELS BYTES [--timeout-s N]
//   rmig_dpdk_bulk_peer client URI CHANNELS BYTES [--timeout-s N] [--zero-copy 1]
// --zero-copy: the client sends 1 MiB frames from EAL-registered memory as
// external buffers (DpdkChannel::send_zero_copy) instead of copying them.
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "transport/channel.hpp"
#include "transport/dpdk/dpdk_transport.hpp"
#include "transport/dpdk/extmem.hpp"

using namespace rmig;
using namespace rmig::transport;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kFrame = 256 << 10;

void fill(std::byte* p, size_t n, uint32_t channel, uint64_t offset) {
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = (uint64_t(channel) << 56) ^ (offset + i) * 0x9e3779b97f4a7c15ULL;
        std::memcpy(p + i, &v, std::min<size_t>(8, n - i));
    }
}

struct Totals {
    uint64_t bytes = 0, retransmits = 0, fast = 0, timeouts = 0, drops = 0, segments = 0;
    std::string error;
};

// The port's queue pairs as [rx, tx, foreign_rx] and each channel's queue, as JSON.
std::string queue_json(const std::vector<std::unique_ptr<Channel>>& chans) {
    std::string out = "\"queues\":[";
    auto* d = chans.empty() ? nullptr : dynamic_cast<dpdk::DpdkChannel*>(chans[0].get());
    if (d) {
        auto qs = d->port_queue_stats();
        for (size_t i = 0; i < qs.size(); ++i)
            out += cat(i ? "," : "", "[", qs[i].rx_frames, ",", qs[i].tx_frames, ",",
                       qs[i].foreign_rx, "]");
    }
    out += "],\"channel_queues\":[";
    for (size_t i = 0; i < chans.size(); ++i)
        if (auto* c = dynamic_cast<dpdk::DpdkChannel*>(chans[i].get()))
            out += cat(i ? "," : "", c->queue());
    return out + "]";
}

void add_stats(Totals& t, Channel& c) {
    if (auto* d = dynamic_cast<dpdk::DpdkChannel*>(&c)) {
        auto s = d->stats();
        t.fast += s.sender.fast_retransmits;
        t.timeouts += s.sender.timeout_retransmits;
        t.retransmits += s.sender.fast_retransmits + s.sender.timeout_retransmits;
        t.drops += s.injected_drops;
        t.segments += s.sender.segments_sent;
    }
}

int run_server(const std::string& uri, uint32_t channels, uint64_t bytes, Options o, int timeout_s) {
    auto listener = listen(uri, o);
    std::printf("{\"listening\":\"%s\"}\n", listener->address().c_str());
    std::fflush(stdout);
    std::vector<std::unique_ptr<Channel>> chans(channels);
    auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    for (uint32_t i = 0; i < channels; ++i) {
        auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
        auto in = listener->next(std::max(left, Millis(1)));
        if (!in) throw Error(cat("server: only ", i, " of ", channels, " channels connected"));
        wire::Hello r = in->hello();
        r.role = wire::Role::destination;
        uint32_t id = in->hello().channel_id;
        if (id < 1 || id > channels) throw Error(cat("server: unexpected channel id ", id));
        chans[id - 1] = in->accept(r);
    }
    std::vector<Totals> t(channels);
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < channels; ++i)
        threads.emplace_back([&, i] {
            try {
                std::vector<std::byte> buf, want;
                uint64_t off = 0;
                for (;;) {
                    auto type = chans[i]->recv(buf);
                    if (type == wire::FrameType::end) break;
                    want.resize(buf.size());
                    fill(want.data(), want.size(), i + 1, off);
                    if (buf != want) {
                        size_t k = 0;
                        while (buf[k] == want[k]) ++k;
                        throw Error(cat("channel ", i + 1, ": byte ", off + k, " differs"));
                    }
                    off += buf.size();
                }
                t[i].bytes = off;
                std::string ack = std::to_string(off);
                chans[i]->send(wire::FrameType::control,
                               std::as_bytes(std::span(ack.data(), ack.size())));
                // Hold the channel until the client has read the answer.
                std::vector<std::byte> bye;
                chans[i]->recv(bye);
            } catch (const std::exception& e) {
                t[i].error = e.what();
            }
        });
    for (auto& th : threads) th.join();
    uint64_t total = 0;
    std::string err;
    for (auto& x : t) {
        total += x.bytes;
        if (!x.error.empty() && err.empty()) err = x.error;
    }
    std::string queues = queue_json(chans);
    chans.clear();
    std::printf("{\"role\":\"server\",\"bytes\":%llu,\"verified\":%s,%s,\"error\":\"%s\"}\n",
                static_cast<unsigned long long>(total), err.empty() && total == bytes ? "true" : "false",
                queues.c_str(), err.c_str());
    return err.empty() && total == bytes ? 0 : 1;
}

constexpr size_t kZeroCopyFrame = 1 << 20;

// Page-aligned memory of its own, registered with the EAL for zero-copy sends.
struct ZeroCopyArea {
    explicit ZeroCopyArea(size_t n) : size(n) {
        void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw Error("mmap for the zero-copy area failed");
        base = static_cast<std::byte*>(p);
        reg = std::make_unique<dpdk::ExternalMemory>(base, n);
    }
    ~ZeroCopyArea() {
        reg.reset();
        munmap(base, size);
    }
    std::byte* base = nullptr;
    size_t size;
    std::unique_ptr<dpdk::ExternalMemory> reg;
};

int run_client(const std::string& uri, uint32_t channels, uint64_t bytes, Options o,
               bool zero_copy) {
    auto session = wire::random_session_id();
    std::vector<std::unique_ptr<Channel>> chans;
    for (uint32_t i = 1; i <= channels; ++i) {
        wire::Hello h;
        h.role = wire::Role::source;
        h.kind = wire::ChannelKind::data;
        h.session = session;
        h.channel_id = i;
        h.channel_count = channels;
        chans.push_back(connect(uri, h, o));
    }
    // Tests that kill the server wait for this line, not for a fixed time.
    std::printf("{\"connected\":%u}\n", channels);
    std::fflush(stdout);
    std::unique_ptr<ZeroCopyArea> area;
    if (zero_copy) area = std::make_unique<ZeroCopyArea>(channels * kZeroCopyFrame);
    std::vector<Totals> t(channels);
    std::vector<std::thread> threads;
    auto start = Clock::now();
    for (uint32_t i = 0; i < channels; ++i)
        threads.emplace_back([&, i] {
            try {
                uint64_t mine = bytes / channels + (i == 0 ? bytes % channels : 0);
                std::vector<std::byte> buf(kFrame);
                for (uint64_t off = 0; off < mine;) {
                    if (area) {
                        std::byte* p = area->base + i * kZeroCopyFrame;
                        size_t n = std::min<uint64_t>(kZeroCopyFrame, mine - off);
                        fill(p, n, i + 1, off);
                        auto& dc = dynamic_cast<dpdk::DpdkChannel&>(*chans[i]);
                        dc.send_zero_copy(wire::FrameType::data, std::span(p, n));
                        off += n;
                        continue;
                    }
                    size_t n = std::min<uint64_t>(kFrame, mine - off);
                    fill(buf.data(), n, i + 1, off);
                    chans[i]->send(wire::FrameType::data, std::span(buf.data(), n));
                    off += n;
                }
                chans[i]->send(wire::FrameType::end, {});
                std::vector<std::byte> ack;
                if (chans[i]->recv(ack) != wire::FrameType::control) throw Error("no count frame");
                uint64_t counted = std::stoull(std::string(reinterpret_cast<char*>(ack.data()), ack.size()));
                if (counted != mine) throw Error(cat("server counted ", counted, " of ", mine));
                t[i].bytes = counted;
                add_stats(t[i], *chans[i]);
                chans[i]->send(wire::FrameType::end, {});
            } catch (const std::exception& e) {
                t[i].error = e.what();
            }
        });
    for (auto& th : threads) th.join();
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    Totals sum;
    for (auto& x : t) {
        sum.bytes += x.bytes;
        sum.retransmits += x.retransmits;
        sum.fast += x.fast;
        sum.timeouts += x.timeouts;
        sum.drops += x.drops;
        sum.segments += x.segments;
        if (!x.error.empty() && sum.error.empty()) sum.error = x.error;
    }
    std::string queues = queue_json(chans);
    chans.clear();
    area.reset();
    std::printf("{\"role\":\"client\",\"bytes\":%llu,\"seconds\":%.3f,\"gbps\":%.3f,"
                "\"segments\":%llu,\"retransmits\":%llu,\"fast_retransmits\":%llu,"
                "\"timeout_retransmits\":%llu,\"injected_drops\":%llu,%s,\"error\":\"%s\"}\n",
                static_cast<unsigned long long>(sum.bytes), secs, double(sum.bytes) * 8 / secs / 1e9,
                static_cast<unsigned long long>(sum.segments),
                static_cast<unsigned long long>(sum.retransmits),
                static_cast<unsigned long long>(sum.fast),
                static_cast<unsigned long long>(sum.timeouts),
                static_cast<unsigned long long>(sum.drops), queues.c_str(), sum.error.c_str());
    return sum.error.empty() && sum.bytes == bytes ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s server|client URI CHANNELS BYTES [--timeout-s N]\n", argv[0]);
        return 2;
    }
    std::string role = argv[1], uri = argv[2];
    auto channels = static_cast<uint32_t>(std::stoul(argv[3]));
    uint64_t bytes = std::stoull(argv[4]);
    int timeout_s = 60;
    bool zero_copy = false;
    for (int i = 5; i + 1 < argc; i += 2) {
        if (std::string(argv[i]) == "--timeout-s") timeout_s = std::stoi(argv[i + 1]);
        if (std::string(argv[i]) == "--zero-copy") zero_copy = std::string(argv[i + 1]) == "1";
    }
    Options o;
    o.connect_timeout = Millis(timeout_s * 1000);
    o.dead_peer_timeout = Millis(5000);
    // Whatever happens, this process ends in time (tests also kill it).
    std::thread([timeout_s] {
        std::this_thread::sleep_for(std::chrono::seconds(timeout_s + 10));
        std::fprintf(stderr, "rmig_dpdk_bulk_peer: gave up after %d s\n", timeout_s + 10);
        std::_Exit(3);
    }).detach();
    try {
        return role == "server" ? run_server(uri, channels, bytes, o, timeout_s)
                                : run_client(uri, channels, bytes, o, zero_copy);
    } catch (const std::exception& e) {
        std::printf("{\"role\":\"%s\",\"error\":\"%s\"}\n", role.c_str(), e.what());
        return 1;
    }
}
