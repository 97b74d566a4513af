// Memory mode under link faults: the engine's source and destination in one
// process over tcp loopback, with lab::FaultProxy between them and a writer
// thread dirtying the source region. Each fault (cut, corrupt, stall, delay)
// is applied before the first byte, mid-round or at switchover. Asserted:
// nothing hangs (bounded by the step timeouts), the source region is exactly
// what the writer made it, a paused source is resumed, the destination never
// hands over device state from a failed session, a delay is survived, and a
// clean retry afterwards arrives byte for byte.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "common/error.hpp"
#include "engine/memory/memory_dest.hpp"
#include "engine/memory/memory_source.hpp"
#include "lab/fault_proxy.hpp"
#include "tests/support/anon_mapping.hpp"
#include "tests/support/memory_dest_start.hpp"

using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kSize = 32u << 20;

struct Mapping : test::AnonMapping {
    Mapping() : AnonMapping(kSize) {}
};

// One writer: 64-byte blocks at random places, mirrored into a shadow.
class Writer {
public:
    Writer(std::byte* region, std::byte* shadow) : region_(region), shadow_(shadow) {}
    ~Writer() { stop(); }
    void start() {
        thread_ = std::thread([this] {
            std::mt19937_64 rng(42);
            uint64_t seq = 0;
            while (!stop_) {
                for (int k = 0; k < 32; ++k) {
                    size_t off = (rng() % (kSize / 64)) * 64;
                    uint64_t block[8];
                    for (auto& w : block) w = ++seq * 0x9e3779b97f4a7c15ULL;
                    std::memcpy(region_ + off, block, 64);
                    std::memcpy(shadow_ + off, block, 64);
                }
                std::this_thread::sleep_for(1ms);
            }
        });
    }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }

private:
    std::byte* region_;
    std::byte* shadow_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

enum class Point { before_first_byte, mid_round, switchover };

struct Case {
    lab::LinkFault fault;
    Point point;
};

std::string name(const Case& c) {
    const char* p = c.point == Point::before_first_byte ? "BeforeFirstByte"
                    : c.point == Point::mid_round       ? "MidRound"
                                                        : "Switchover";
    return std::string(lab::to_string(c.fault)) + "_" + p;
}

struct Dest {
    MemoryDestConfig cfg;
    std::stop_source stop;
    std::future<MemoryDestResult> result;
    std::string address;

    Dest(Mapping& m, std::function<void(uint64_t, uint64_t)> on_round) {
        cfg.regions = {Region{m.data(), kSize, 0, "ram"}};
        cfg.listen_uri = "tcp:127.0.0.1:0";
        cfg.timeout = 30s;
        cfg.step_timeout = 2s;
        cfg.on_round_done = std::move(on_round);
        cfg.stop = stop.get_token();
        address = test::start_receiving(cfg, result);
    }
};

bool names_integrity_error(const std::string& s) {
    for (const char* w : {"checksum", "bad frame magic", "frame out of order", "unknown frame type",
                          "reserved header bits", "more than the limit", "belongs to channel",
                          "truncated frame", "page batch", "bad magic"})
        if (s.find(w) != std::string::npos) return true;
    return false;
}

// A clean migration of the same source, straight to a fresh destination.
void retry_verifies(Mapping& src, Mapping& shadow) {
    Mapping dst;
    Dest dest(dst, {});
    MemorySourceConfig cfg;
    cfg.regions = {Region{src.data(), kSize, 0, "ram"}};
    cfg.dest_uri = dest.address;
    cfg.workers = 2;
    cfg.step_timeout = 10s;
    cfg.pause = [] { return std::vector<std::byte>{std::byte{7}}; };
    MemorySourceResult r = migrate_memory(cfg);
    MemoryDestResult d = dest.result.get();
    ASSERT_TRUE(r.ok) << "retry: " << r.error;
    ASSERT_TRUE(d.ok) << "retry: " << d.error;
    EXPECT_EQ(std::memcmp(src.data(), shadow.data(), kSize), 0);
    EXPECT_EQ(std::memcmp(src.data(), dst.data(), kSize), 0) << "retry did not arrive byte for byte";
}

}  // namespace

class MemoryModeFault : public testing::TestWithParam<Case> {};

TEST_P(MemoryModeFault, SourceIntactDestinationSafeRetryVerifies) {
    const Case c = GetParam();
    Mapping src, shadow, dst;
    std::memset(src.data(), 0x11, kSize);
    std::memcpy(shadow.data(), src.data(), kSize);
    Writer writer(src.data(), shadow.data());

    std::unique_ptr<lab::FaultProxy> proxy;
    std::atomic<bool> fired{false};
    auto fire = [&](size_t channel) {
        if (fired.exchange(true)) return;
        proxy->apply(c.fault, channel, c.fault == lab::LinkFault::corrupt ? 1000 : 0, 800ms);
    };
    // Mid-round: once round 0 is done at the destination, round 1 is under way.
    Dest dest(dst, [&](uint64_t round, uint64_t) {
        if (c.point == Point::mid_round && round == 0) fire(1);
    });
    proxy = std::make_unique<lab::FaultProxy>(dest.address, c.point == Point::before_first_byte);

    bool paused = false, resumed = false;
    MemorySourceConfig cfg;
    cfg.regions = {Region{src.data(), kSize, 0, "ram"}};
    cfg.dest_uri = proxy->address();
    cfg.workers = 2;
    cfg.step_timeout = 2s;
    // Mid-round: never converge, so the fault meets pre-copy; else switch after round 0.
    cfg.convergence.downtime_budget_ms = c.point == Point::mid_round && c.fault != lab::LinkFault::delay
                                             ? 1e-6
                                             : 1e6;
    cfg.pause = [&] {
        paused = true;
        writer.stop();
        if (c.point == Point::switchover) fire(0);  // the device state goes on the control channel
        return std::vector<std::byte>(64 << 10, std::byte{0x42});
    };
    cfg.on_failure_resume = [&] { resumed = true; };

    std::thread gate;
    if (c.point == Point::before_first_byte)
        gate = std::thread([&] {
            for (int i = 0; i < 500 && proxy->connections() == 0; ++i) std::this_thread::sleep_for(10ms);
            fire(0);
            proxy->open_gate();
        });
    writer.start();
    auto t0 = std::chrono::steady_clock::now();
    MemorySourceResult r = migrate_memory(cfg);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    writer.stop();
    if (gate.joinable()) gate.join();
    // A link broken before the first byte: the destination never saw a
    // session and rightly goes on waiting for a source; its operator stops it.
    if (c.point == Point::before_first_byte && c.fault != lab::LinkFault::delay && !r.ok)
        dest.stop.request_stop();
    auto status = dest.result.wait_for(20s);
    ASSERT_EQ(status, std::future_status::ready) << "the destination hangs after the source ended";
    MemoryDestResult d = dest.result.get();
    proxy.reset();

    EXPECT_TRUE(fired) << "the fault never fired";
    EXPECT_LT(secs, 15.0) << "nothing may hang past the step timeouts";
    EXPECT_EQ(std::memcmp(src.data(), shadow.data(), kSize), 0) << "the engine modified the source";
    if (c.fault == lab::LinkFault::delay) {
        EXPECT_TRUE(r.ok) << "a delay shorter than the step timeout must be survived: " << r.error;
        EXPECT_TRUE(d.ok) << d.error;
        EXPECT_EQ(std::memcmp(src.data(), dst.data(), kSize), 0);
    } else {
        EXPECT_FALSE(r.ok);
        EXPECT_FALSE(r.error.empty());
        EXPECT_FALSE(d.ok) << "the destination accepted a broken session";
        EXPECT_TRUE(d.device_state.empty()) << "device state handed over from a failed session";
        EXPECT_EQ(resumed, paused) << "a paused source must be resumed after the failure";
        if (c.fault == lab::LinkFault::corrupt) {
            EXPECT_TRUE(names_integrity_error(r.error) || names_integrity_error(d.error))
                << "source: " << r.error << "\ndestination: " << d.error;
        }
    }
    std::printf("[ info ] %s: %.2f s; source: %s; destination: %s\n", name(c).c_str(), secs,
                r.ok ? "ok" : r.error.c_str(), d.ok ? "ok" : d.error.c_str());
    retry_verifies(src, shadow);
}

INSTANTIATE_TEST_SUITE_P(
    Faults, MemoryModeFault,
    testing::Values(Case{lab::LinkFault::cut, Point::before_first_byte},
                    Case{lab::LinkFault::cut, Point::mid_round},
                    Case{lab::LinkFault::cut, Point::switchover},
                    Case{lab::LinkFault::corrupt, Point::mid_round},
                    Case{lab::LinkFault::corrupt, Point::switchover},
                    Case{lab::LinkFault::stall, Point::mid_round},
                    Case{lab::LinkFault::stall, Point::switchover},
                    Case{lab::LinkFault::delay, Point::mid_round},
                    Case{lab::LinkFault::delay, Point::switchover}),
    [](const testing::TestParamInfo<Case>& p) { return name(p.param); });
