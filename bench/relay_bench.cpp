// Channel-mode relay throughput and CPU cost against its baselines, in one run:
//   raw    : one thread writes N bytes into a UNIX socket, another reads them
//            (what a direct QEMU-to-QEMU migration over unix: costs)
//   relay  : the same bytes through SourceRelay -> TCP loopback -> DestRelay
//            (what rmig adds between the two QEMUs), plaintext and/or with
//            AES-256-GCM (a PSK context, as `rmig --psk-file` builds one)
//   memcpy : the copy floor, 256 MiB buffers (larger than any cache) copied
// with S parallel streams. Prints GB/s and CPU seconds per GiB moved.
//
// How CPU is counted: the process's user+sys time (getrusage) over the
// transfer, minus the CPU time of the QEMU stand-in writer/reader threads
// (their own thread clocks), i.e. both relays together; kernel work done in a
// relay thread's context (loopback TCP delivers in the sender's softirq)
// counts for the relay. The raw baseline counts its writer and reader.
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "common/units.hpp"
#include "qemu-plugin/dest_relay.hpp"
#include "qemu-plugin/source_relay.hpp"
#include "security/context.hpp"
#include "security/secure_transport.hpp"

using namespace rmig;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr double kGiB = double(1ULL << 30);

double seconds_of(const timeval& tv) {
    return double(tv.tv_sec) + double(tv.tv_usec) / 1e6;
}

// CPU seconds and voluntary context switches (a blocked syscall that had to
// be woken: a wakeup) of the process or of the calling thread.
struct Usage {
    double cpu = 0;
    double switches = 0;
    Usage operator-(const Usage& o) const { return {cpu - o.cpu, switches - o.switches}; }
    Usage& operator+=(const Usage& o) { return cpu += o.cpu, switches += o.switches, *this; }
};

Usage usage_of(int who) {
    rusage ru{};
    ::getrusage(who, &ru);
    return {seconds_of(ru.ru_utime) + seconds_of(ru.ru_stime), double(ru.ru_nvcsw)};
}

double thread_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

struct Sample {
    double seconds = 0;
    Usage use;       // the process's over the transfer, minus the stand-ins' when relaying
    Usage standins;  // the stand-ins' own (to see whether a change shifts work onto them)
};

// Writes `bytes` on each of `out`, reads them on each of `in` (the QEMU
// stand-ins). `minus_standins`: subtract their CPU from the process's.
Sample pump(std::vector<UniqueFd>& out, std::vector<UniqueFd>& in, size_t bytes, bool minus_standins) {
    std::mutex mutex;
    Usage standins;
    auto add = [&] {
        Usage u = usage_of(RUSAGE_THREAD);
        std::lock_guard lock(mutex);
        standins += u;
    };
    Usage use0 = usage_of(RUSAGE_SELF);
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (auto& fd : out)
        threads.emplace_back([&, f = fd.get()] {
            std::vector<char> buf(256 << 10, 'x');
            for (size_t done = 0; done < bytes; done += buf.size())
                net::write_full(f, buf.data(), std::min(buf.size(), bytes - done));
            ::shutdown(f, SHUT_WR);
            add();
        });
    for (auto& fd : in)
        threads.emplace_back([&, f = fd.get()] {
            std::vector<char> buf(256 << 10);
            size_t got = 0;
            while (size_t n = net::read_some(f, buf.data(), buf.size())) got += n;
            if (got != bytes) std::fprintf(stderr, "short stream: %zu of %zu\n", got, bytes);
            add();
        });
    for (auto& t : threads) t.join();
    Sample s;
    s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    s.use = usage_of(RUSAGE_SELF) - use0;
    if (minus_standins) s.use = s.use - standins;
    s.standins = standins;
    return s;
}

Sample raw(const std::string& dir, uint32_t streams, size_t bytes) {
    UniqueFd l = net::unix_listen(dir + "/raw.sock");
    std::vector<UniqueFd> out, in;
    for (uint32_t i = 0; i < streams; ++i) {
        out.push_back(net::unix_connect(dir + "/raw.sock", milliseconds(1000)));
        in.push_back(net::accept_for(l.get(), milliseconds(1000)));
    }
    Sample s = pump(out, in, bytes, false);
    ::unlink((dir + "/raw.sock").c_str());
    return s;
}

std::shared_ptr<security::Context> psk_context() {
    security::Config sc;
    sc.psk.resize(32);
    for (int half = 0; half < 2; ++half) {
        auto r = wire::random_session_id();  // 16 random bytes
        std::memcpy(sc.psk.data() + 16 * half, r.data(), 16);
    }
    sc.encrypt = true;
    return security::Context::create(sc);
}

Sample relay(const std::string& dir, uint32_t streams, size_t bytes, size_t chunk,
             const std::shared_ptr<security::Context>& ctx) {
    auto session = wire::random_session_id();
    UniqueFd dest_qemu = net::unix_listen(dir + "/dest.sock");
    auto listener = security::listen("tcp:127.0.0.1:0", {}, ctx);
    qemu::DestRelay dest(dir + "/dest.sock", session, streams, qemu::FlowSettings{.chunk = chunk});
    std::unique_ptr<transport::Channel> server_control, client_control;
    std::jthread acceptor([&](std::stop_token st) {
        while (!st.stop_requested()) {
            auto in = listener->next(milliseconds(50));
            if (!in) continue;
            if (in->hello().kind == wire::ChannelKind::control) {
                wire::Hello reply = in->hello();
                reply.role = wire::Role::destination;
                server_control = in->accept(reply);
            } else {
                dest.offer(std::move(in));
            }
        }
    });
    qemu::RelayConfig rc;
    rc.dest_uris = {listener->address()};
    rc.session = session;
    rc.channels = streams;
    rc.flow.chunk = chunk;
    rc.security = ctx;
    if (ctx) {  // as `rmig migrate` does: the control channel authenticates the session first
        wire::Hello h;
        h.kind = wire::ChannelKind::control;
        h.session = session;
        h.channel_count = streams;
        client_control = security::connect(rc.dest_uris[0], h, {}, ctx);
    }
    qemu::SourceRelay src(dir + "/src.sock", rc);
    src.start();
    std::vector<UniqueFd> out, in;
    for (uint32_t i = 0; i < streams; ++i) {
        out.push_back(net::unix_connect(dir + "/src.sock", milliseconds(1000)));
        in.push_back(net::accept_for(dest_qemu.get(), milliseconds(5000)));
        if (!in.back()) throw Error("relay did not connect the destination side");
    }
    Sample s = pump(out, in, bytes, true);
    if (auto e = src.streams().error()) throw Error(*e);
    if (auto e = dest.streams().error()) throw Error(*e);
    return s;
}

// CPU seconds per GiB copied between two 256 MiB buffers, both faulted in
// first (the escape keeps the compiler from dropping the "dead" memset).
double memcpy_floor() {
    constexpr size_t kBuf = size_t{256} << 20;
    std::unique_ptr<char[]> a(new char[kBuf]), b(new char[kBuf]);
    std::memset(a.get(), 1, kBuf);
    std::memset(b.get(), 2, kBuf);
    auto escape = [](void* p) { asm volatile("" : : "g"(p) : "memory"); };
    escape(a.get());
    escape(b.get());
    constexpr int kCopies = 4;
    double t0 = thread_cpu();
    for (int i = 0; i < kCopies; ++i) {
        std::memcpy(i % 2 ? a.get() : b.get(), i % 2 ? b.get() : a.get(), kBuf);
        escape(a.get());
        escape(b.get());
    }
    return (thread_cpu() - t0) / (double(kBuf) * kCopies / kGiB);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int usage() {
    std::fprintf(stderr,
                 "usage: rmig-relay-bench [--security none|encrypt|both] [--chunk BYTES] [--json]\n"
                 "                        [STREAMS=1] [MIB_PER_STREAM=1024] [RUNS=3]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string security = "none";
    size_t chunk = qemu::kDefaultChunk;
    bool json = false;
    std::vector<std::string> pos;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--security" && i + 1 < argc)
            security = argv[++i];
        else if (a == "--chunk" && i + 1 < argc)
            chunk = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--json")
            json = true;
        else if (a == "-h" || a == "--help")
            return usage(), 0;
        else if (a.starts_with("--"))
            return usage();
        else
            pos.push_back(a);
    }
    uint32_t streams = pos.size() > 0 ? static_cast<uint32_t>(std::atoi(pos[0].c_str())) : 1;
    size_t bytes = (pos.size() > 1 ? std::strtoull(pos[1].c_str(), nullptr, 10) : 1024) << 20;
    int runs = pos.size() > 2 ? std::atoi(pos[2].c_str()) : 3;
    bool plain = security == "none" || security == "both";
    bool aes = security == "encrypt" || security == "both";
    if (streams == 0 || runs <= 0 || bytes == 0 || (!plain && !aes) || chunk == 0 || chunk > wire::kMaxFramePayload)
        return usage();
    std::string dir = "/tmp/rmig-relay-bench-XXXXXX";
    if (!::mkdtemp(dir.data())) return 1;
    int rc = 0;
    try {
        auto ctx = aes ? psk_context() : nullptr;
        // Interleaved, so a change in the machine's load hits every mode alike.
        std::map<std::string, std::vector<double>> rate, cpu, wakeups, standin_cpu;
        const double total = double(bytes) * streams;
        auto record = [&](const std::string& mode, const Sample& s) {
            rate[mode].push_back(total / s.seconds);
            cpu[mode].push_back(s.use.cpu / (total / kGiB));
            wakeups[mode].push_back(s.use.switches / (total / kGiB));
            standin_cpu[mode].push_back(s.standins.cpu / (total / kGiB));
        };
        for (int i = 0; i < runs; ++i) {
            record("raw", raw(dir, streams, bytes));
            if (plain) record("relay", relay(dir, streams, bytes, chunk, nullptr));
            if (aes) record("relay_aes", relay(dir, streams, bytes, chunk, ctx));
            cpu["memcpy"].push_back(memcpy_floor());
        }
        double floor = median(cpu["memcpy"]), raw_cpu = median(cpu["raw"]);
        nlohmann::json j;
        j["streams"] = streams;
        j["bytes_per_stream"] = bytes;
        j["runs"] = runs;
        j["chunk"] = chunk;
        j["memcpy_cpu_s_per_gib"] = floor;
        for (auto& [mode, r] : rate) {
            j[mode] = {{"rate_bytes_per_s", median(r)},
                       {"cpu_s_per_gib", median(cpu[mode])},
                       {"cpu_over_memcpy", median(cpu[mode]) / floor},
                       {"cpu_over_raw", median(cpu[mode]) / raw_cpu},
                       {"voluntary_switches_per_gib", median(wakeups[mode])},
                       {"standin_cpu_s_per_gib", median(standin_cpu[mode])}};
        }
        if (json) {
            std::printf("%s\n", j.dump(2).c_str());
        } else {
            std::printf(
                "streams %u, %s each, chunk %s, median of %d (CPU: both relays, without the "
                "QEMU stand-ins)\n",
                streams, format_bytes(double(bytes)).c_str(), format_bytes(double(chunk)).c_str(), runs);
            std::printf("  %-22s %12s %10s %8s %8s %12s\n", "", "rate", "CPU s/GiB", "/memcpy", "/raw", "wakeups/GiB");
            std::printf("  %-22s %12s %10.3f %8s %8s\n", "memcpy 256 MiB", "", floor, "1.00", "");
            const char* names[][2] = {
                {"raw", "raw unix socket"}, {"relay", "relay plaintext"}, {"relay_aes", "relay AES-256-GCM"}};
            for (auto& [key, label] : names) {
                if (!rate.count(key)) continue;
                double c = median(cpu[key]);
                std::printf("  %-22s %12s %10.3f %8.2f %8.2f %12.0f\n", label, format_rate(median(rate[key])).c_str(),
                            c, c / floor, c / raw_cpu, median(wakeups[key]));
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rmig-relay-bench: %s\n", e.what());
        rc = 1;
    }
    std::system(("rm -rf " + dir).c_str());
    return rc;
}
