// rmig-transport-bench: bulk throughput of an rmig transport (tcp over
// loopback by default, or rdma on a local RDMA device with --listen rdma:ADDR:0).
//
// Opens S data channels to itself (listener and connector in this process,
// port 0), then S sender threads push N bytes in total as data frames of
// --chunk bytes while S receiver threads take them with Channel::recv, which
// checks every frame's header, sequence and XXH3 checksum. The clock runs from
// the moment all threads are ready until the last receiver has its end frame.
//
// This is a benchmark, not a test: compare its rate with a raw baseline from
// the same run (bench/scripts/tcp_vs_iperf3.sh does that against iperf3).
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <iostream>
#include <latch>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/units.hpp"
#include "wire/frame.hpp"
#include "wire/handshake.hpp"
#include "security/context.hpp"
#include "security/secure_transport.hpp"
#include "transport/channel.hpp"

namespace rmig {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitTimeout = 3;

struct Config {
    uint64_t bytes = 4ULL << 30;
    uint32_t streams = 4;
    uint64_t chunk = 1ULL << 20;
    double timeout_s = 120;
    int socket_buffer = transport::Options{}.socket_buffer_bytes;
    bool json = false;
    std::string listen = "tcp:127.0.0.1:0";
    std::string security = "none";  // none, auth or encrypt (security/, with a random PSK)
    bool sealed_copy = false;       // encrypt: the buffered path even where the transport fills in place
};

const char* const kUsage = R"(usage: rmig-transport-bench [options]

Moves --bytes over --streams rmig channels (tcp on 127.0.0.1 unless --listen; sender and
receiver threads in this process) and prints the throughput. The receiver
verifies every frame (sequence, header, XXH3 checksum) as rmig always does.

  --bytes SIZE          total payload bytes, split evenly over the streams
                        (default 4G; suffixes K, M, G, T are binary)
  --streams N           data channels, each with its own sender and receiver
                        thread (default 4, 1..256)
  --chunk SIZE          payload bytes per data frame (default 1M, max 16M)
  --socket-buffer SIZE  SO_SNDBUF/SO_RCVBUF per socket, as transport::Options
                        (default 8M, the transport's default; 0 leaves the
                        kernel's autotuning on)
  --timeout SECONDS     give up with an error after this long (default 120)
  --listen URI          where the receiving side listens: tcp:127.0.0.1:0
                        (default) or rdma:ADDR:0 with ADDR on an RDMA device
  --security MODE       none (default); auth: a TLS 1.3 PSK session with channel
                        tokens; encrypt: auth plus AES-256-GCM on every frame
  --sealed-copy         with encrypt: seal into a channel buffer that the transport
                        copies, instead of into rdma's registered slots (to measure
                        what sealing in place saves; tcp always seals this way)
  --json                print one JSON object instead of the text line
  --help                show this help

Exit status: 0 done, 1 transfer failed, 2 bad usage, 3 timed out.
)";

struct UsageError : Error {
    using Error::Error;
};

Config parse_args(int argc, char** argv) {
    Config c;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::string value;
        bool has_value = false;
        if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg.resize(eq);
            has_value = true;
        }
        auto need = [&]() -> const std::string& {
            if (!has_value) {
                if (i + 1 >= argc) throw UsageError(cat(arg, " needs a value"));
                value = argv[++i];
                has_value = true;
            }
            return value;
        };
        if (arg == "--help" || arg == "-h") {
            std::cout << kUsage;
            std::exit(0);
        } else if (arg == "--sealed-copy") {
            c.sealed_copy = true;
        } else if (arg == "--json") {
            c.json = true;
        } else if (arg == "--bytes") {
            c.bytes = parse_size(need(), "--bytes");
        } else if (arg == "--chunk") {
            c.chunk = parse_size(need(), "--chunk");
        } else if (arg == "--listen") {
            c.listen = need();
        } else if (arg == "--security") {
            c.security = need();
            if (c.security != "none" && c.security != "auth" && c.security != "encrypt")
                throw UsageError("--security must be none, auth or encrypt");
        } else if (arg == "--socket-buffer") {
            uint64_t b = parse_size(need(), "--socket-buffer");
            if (b > (1ULL << 30)) throw UsageError("--socket-buffer must be at most 1G");
            c.socket_buffer = static_cast<int>(b);
        } else if (arg == "--streams") {
            uint64_t s = parse_size(need(), "--streams");
            if (s < 1 || s > 256) throw UsageError("--streams must be 1..256");
            c.streams = static_cast<uint32_t>(s);
        } else if (arg == "--timeout") {
            char* end = nullptr;
            const std::string& v = need();
            c.timeout_s = std::strtod(v.c_str(), &end);
            if (v.empty() || *end != '\0' || !(c.timeout_s > 0))
                throw UsageError(cat("bad --timeout '", v, "': expected seconds > 0"));
        } else {
            throw UsageError(cat("unknown option '", argv[i], "' (see --help)"));
        }
    }
    if (c.chunk < 1 || c.chunk > wire::kMaxFramePayload)
        throw UsageError(cat("--chunk must be 1..", wire::kMaxFramePayload, " bytes"));
    if (c.bytes < 1) throw UsageError("--bytes must be at least 1");
    return c;
}

wire::Hello data_hello(const wire::SessionId& session, uint32_t id, uint32_t count) {
    wire::Hello h;
    h.role = wire::Role::source;
    h.kind = wire::ChannelKind::data;
    h.session = session;
    h.channel_id = id;
    h.channel_count = count;
    return h;
}

// Incompressible, different per stream; filled once, so the timed loop only
// does what a channel does with a buffer it already holds.
std::vector<std::byte> random_buffer(size_t size, uint64_t seed) {
    std::vector<std::byte> buf(size);
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL | 1;
    for (size_t i = 0; i < size; i += sizeof x) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545f4914f6cdd1dULL;
        std::memcpy(&buf[i], &v, std::min(sizeof v, size - i));
    }
    return buf;
}

double cpu_seconds(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// CPU time of the calling thread, to tell which side of a stream is the bottleneck.
double thread_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Usage {
    double user = 0, sys = 0;
    static Usage now() {
        rusage ru{};
        ::getrusage(RUSAGE_SELF, &ru);
        return {cpu_seconds(ru.ru_utime), cpu_seconds(ru.ru_stime)};
    }
};

// Shared state of one run: the channels (so a failure or the watchdog can shut
// them all down and unblock every thread) and the first error seen.
class Run {
public:
    explicit Run(uint32_t streams) : servers(streams), clients(streams) {}

    std::vector<std::unique_ptr<transport::Channel>> servers, clients;

    // Records the first failure and shuts every channel down so no thread stays
    // blocked behind it. Later failures (the LinkErrors that follow) are ignored.
    void fail(const std::string& what) {
        std::lock_guard lock(mutex_);
        if (error_.empty()) error_ = what;
        shutdown_locked();
    }
    void timed_out(double seconds) {
        std::lock_guard lock(mutex_);
        if (error_.empty()) error_ = cat("timed out after ", seconds, " s (--timeout)");
        timed_out_ = true;
        shutdown_locked();
    }
    // Channels are only published here so that fail()/timed_out() see them.
    void publish(std::vector<std::unique_ptr<transport::Channel>>& slot, size_t i,
                 std::unique_ptr<transport::Channel> ch) {
        std::lock_guard lock(mutex_);
        slot[i] = std::move(ch);
        if (!error_.empty()) slot[i]->shutdown();
    }
    std::string error() const {
        std::lock_guard lock(mutex_);
        return error_;
    }
    bool was_timeout() const {
        std::lock_guard lock(mutex_);
        return timed_out_;
    }

private:
    void shutdown_locked() {
        for (auto* v : {&servers, &clients})
            for (auto& ch : *v)
                if (ch) ch->shutdown();
    }
    mutable std::mutex mutex_;
    std::string error_;
    bool timed_out_ = false;
};

// Aborts the run after the timeout: shuts the channels down (blocked send/recv
// throw), and if the process still has not finished a few seconds later, exits.
class Watchdog {
public:
    Watchdog(Run& run, double seconds) : thread_([this, &run, seconds] { watch(run, seconds); }) {}
    ~Watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    void watch(Run& run, double seconds) {
        std::unique_lock lock(mutex_);
        auto limit = std::chrono::duration_cast<Clock::duration>(Seconds(seconds));
        if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
        run.timed_out(seconds);
        if (cv_.wait_for(lock, std::chrono::seconds(5), [this] { return done_; })) return;
        std::fprintf(stderr, "rmig-transport-bench: timed out after %g s and could not stop cleanly\n",
                     seconds);
        std::_Exit(kExitTimeout);
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

struct Result {
    double seconds = 0;
    uint64_t bytes = 0;
    uint64_t frames = 0;
    Usage cpu;
    std::vector<double> stream_seconds;
    double sender_cpu = 0, receiver_cpu = 0;  // summed over the threads of each side
};

void open_channels(const Config& cfg, Run& run) {
    transport::Options opts;
    opts.socket_buffer_bytes = cfg.socket_buffer;
    std::shared_ptr<security::Context> ctx;
    if (cfg.security != "none") {
        security::Config sc;
        sc.psk.resize(32);
        auto id = wire::random_session_id();  // 16 random bytes, twice
        std::memcpy(sc.psk.data(), id.data(), 16);
        id = wire::random_session_id();
        std::memcpy(sc.psk.data() + 16, id.data(), 16);
        sc.encrypt = cfg.security == "encrypt";
        sc.seal_in_place = !cfg.sealed_copy;
        ctx = security::Context::create(sc);
    }
    auto listener = security::listen(cfg.listen, opts, ctx);
    auto session = wire::random_session_id();
    const uint32_t n = cfg.streams;
    // With security, the control channel authenticates the session first.
    std::unique_ptr<transport::Channel> server_control, client_control;
    auto control_acceptor = std::async(std::launch::async, [&] {
        if (!ctx) return;
        auto in = listener->next(transport::Millis(10000));
        if (!in) throw LinkError("no control channel connected within 10 s");
        wire::Hello reply = in->hello();
        reply.role = wire::Role::destination;
        server_control = in->accept(reply);
    });
    if (ctx) {
        wire::Hello h = data_hello(session, 0, n);
        h.kind = wire::ChannelKind::control;
        client_control = security::connect(listener->address(), h, opts, ctx);
    }
    control_acceptor.get();
    auto acceptor = std::async(std::launch::async, [&] {
        for (uint32_t i = 0; i < n; ++i) {
            auto in = listener->next(transport::Millis(10000));
            if (!in) throw LinkError("no data channel connected within 10 s");
            const wire::Hello& h = in->hello();
            if (h.session != session || h.channel_id < 1 || h.channel_id > n ||
                run.servers[h.channel_id - 1]) {
                in->refuse(wire::HelloStatus::bad_channel);
                throw ProtocolError(cat("unexpected channel ", h.channel_id, " from ", in->peer()));
            }
            wire::Hello reply = h;
            reply.role = wire::Role::destination;
            run.publish(run.servers, h.channel_id - 1, in->accept(reply));
        }
    });
    std::exception_ptr connect_error;
    try {
        for (uint32_t c = 1; c <= n; ++c)
            run.publish(run.clients, c - 1,
                        security::connect(listener->address(), data_hello(session, c, n), opts, ctx));
    } catch (...) {
        connect_error = std::current_exception();
    }
    acceptor.get();  // bounded by next()'s timeout; rethrows the acceptor's error
    if (connect_error) std::rethrow_exception(connect_error);
}

Result transfer(const Config& cfg, Run& run) {
    const uint32_t n = cfg.streams;
    std::latch ready(2 * static_cast<ptrdiff_t>(n) + 1);
    std::latch go(1);
    std::vector<uint64_t> received(n, 0), frames(n, 0);
    std::vector<Clock::time_point> finished(n);
    std::vector<double> sender_cpu(n, 0), receiver_cpu(n, 0);
    std::vector<std::thread> threads;
    threads.reserve(2 * n);

    // If a thread cannot be started, release and join the ones that were.
    auto abandon = [&](const std::string& why) {
        run.fail(why);
        go.count_down();
        for (auto& t : threads) t.join();
        throw Error(why);
    };
    for (uint32_t c = 0; c < n; ++c) try {
        const uint64_t share = cfg.bytes / n + (c < cfg.bytes % n ? 1 : 0);
        threads.emplace_back([&, c, share] {
            auto buf = random_buffer(
                static_cast<size_t>(std::clamp<uint64_t>(share, 1, cfg.chunk)), c + 1);
            ready.count_down();
            go.wait();
            const double cpu0 = thread_cpu_seconds();
            try {
                auto& ch = *run.clients[c];
                for (uint64_t left = share; left > 0;) {
                    auto len = static_cast<size_t>(std::min<uint64_t>(cfg.chunk, left));
                    ch.send(wire::FrameType::data, std::span<const std::byte>(buf.data(), len));
                    left -= len;
                }
                ch.send(wire::FrameType::end, {});
            } catch (const std::exception& e) {
                run.fail(cat("sender ", c + 1, ": ", e.what()));
            }
            sender_cpu[c] = thread_cpu_seconds() - cpu0;
        });
        threads.emplace_back([&, c, share] {
            std::vector<std::byte> payload;
            payload.reserve(static_cast<size_t>(cfg.chunk));
            ready.count_down();
            go.wait();
            const double cpu0 = thread_cpu_seconds();
            try {
                auto& ch = *run.servers[c];
                uint64_t got = 0, count = 0;
                for (;;) {
                    auto type = ch.recv(payload);
                    if (type == wire::FrameType::end) break;
                    if (type != wire::FrameType::data)
                        throw ProtocolError(cat(ch.name(), ": unexpected ",
                                                wire::to_string(type), " frame"));
                    got += payload.size();
                    ++count;
                }
                finished[c] = Clock::now();
                received[c] = got;
                frames[c] = count;
                if (got != share)
                    throw Error(cat(ch.name(), ": received ", got, " bytes, expected ", share));
            } catch (const std::exception& e) {
                run.fail(cat("receiver ", c + 1, ": ", e.what()));
            }
            receiver_cpu[c] = thread_cpu_seconds() - cpu0;
        });
    } catch (const std::system_error& e) {
        abandon(cat("cannot start the threads of stream ", c + 1, ": ", e.what()));
    }

    ready.arrive_and_wait();
    const Usage cpu0 = Usage::now();
    const auto t0 = Clock::now();
    go.count_down();
    for (auto& t : threads) t.join();
    const Usage cpu1 = Usage::now();

    Result r;
    auto t1 = t0;
    for (uint32_t c = 0; c < n; ++c) {
        t1 = std::max(t1, finished[c]);
        r.bytes += received[c];
        r.frames += frames[c];
        r.stream_seconds.push_back(Seconds(finished[c] - t0).count());
        r.sender_cpu += sender_cpu[c];
        r.receiver_cpu += receiver_cpu[c];
    }
    r.seconds = std::max(Seconds(t1 - t0).count(), 1e-9);
    r.cpu = {cpu1.user - cpu0.user, cpu1.sys - cpu0.sys};
    return r;
}

void report(const Config& cfg, const Result& r) {
    const double gbit = static_cast<double>(r.bytes) * 8 / r.seconds / 1e9;
    const double cpu_pct = (r.cpu.user + r.cpu.sys) / r.seconds * 100;
    if (cfg.json) {
        nlohmann::json j = {
            {"transport", cfg.listen.substr(0, cfg.listen.find(':'))},
            {"listen", cfg.listen},
            {"security", cfg.security},
            {"sealed_copy", cfg.sealed_copy},
            {"bytes", r.bytes},
            {"streams", cfg.streams},
            {"chunk", cfg.chunk},
            {"socket_buffer", cfg.socket_buffer},
            {"frames", r.frames},
            {"seconds", r.seconds},
            {"bits_per_second", gbit * 1e9},
            {"gbit_per_s", gbit},
            {"cpu_user_s", r.cpu.user},
            {"cpu_sys_s", r.cpu.sys},
            {"cpu_percent", cpu_pct},
            {"sender_cpu_s", r.sender_cpu},
            {"receiver_cpu_s", r.receiver_cpu},
            {"stream_seconds", r.stream_seconds},
        };
        std::cout << j.dump() << '\n';
    } else {
        // Busy share of a side: its threads' CPU time over the wall time they had.
        const double wall = r.seconds * cfg.streams;
        std::printf("rmig over %s (security %s): %s over %u stream%s (%s frames) in %.3f s: %.2f Gbit/s\n"
                    "  cpu %.0f%% (user %.2f s, sys %.2f s); per thread busy: senders %.0f%%,"
                    " receivers %.0f%%\n",
                    cfg.listen.c_str(), (cfg.security + (cfg.sealed_copy ? ", sealed-copy" : "")).c_str(),
                    format_bytes(static_cast<double>(r.bytes)).c_str(), cfg.streams,
                    cfg.streams == 1 ? "" : "s", format_bytes(static_cast<double>(cfg.chunk)).c_str(),
                    r.seconds, gbit, cpu_pct, r.cpu.user, r.cpu.sys, r.sender_cpu / wall * 100,
                    r.receiver_cpu / wall * 100);
    }
}

int main_impl(int argc, char** argv) {
    Config cfg;
    try {
        cfg = parse_args(argc, argv);
    } catch (const Error& e) {
        std::fprintf(stderr, "rmig-transport-bench: %s\n", e.what());
        return kExitUsage;
    }
    Run run(cfg.streams);
    Result result;
    {
        Watchdog watchdog(run, cfg.timeout_s);
        try {
            open_channels(cfg, run);
            result = transfer(cfg, run);
        } catch (const std::exception& e) {
            run.fail(e.what());
        }
    }
    if (auto err = run.error(); !err.empty()) {
        std::fprintf(stderr, "rmig-transport-bench: %s\n", err.c_str());
        return run.was_timeout() ? kExitTimeout : kExitError;
    }
    report(cfg, result);
    return 0;
}

}  // namespace
}  // namespace rmig

int main(int argc, char** argv) { return rmig::main_impl(argc, argv); }
