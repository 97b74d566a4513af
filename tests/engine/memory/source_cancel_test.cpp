// Cancelling a memory-mode migration from the source (MemorySourceConfig::
// stop), with real threads over tcp loopback: mid-round (50 ms after tracking
// started, right before round 0 reads its first page; round 0 made slow by
// zstd at level 19 over 256 MiB, so the cancel surely lands inside it), at
// switchover after pause(), and before the start. Each
// case checks that the source memory is exactly what it was (the engine only
// reads it), that a paused guest was resumed and runs again, that the
// destination reports the source's abort and keeps no device state, and that
// both sides return within a bound of the cancel.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <semaphore>
#include <thread>

#include "common/error.hpp"
#include "engine/memory/memory_dest.hpp"
#include "engine/memory/memory_source.hpp"
#include "tests/support/anon_mapping.hpp"
#include "tests/support/memory_dest_start.hpp"

using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kPage = 4096;
constexpr auto kBound = 1500ms;  // cancel -> both sides returned (the grace is 2 s; a healthy peer needs ms)

using Mapping = test::AnonMapping;

// Random bytes (zstd cannot shrink them, and tries hard at level 19), every
// eighth page zero.
void fill_random(std::byte* p, size_t size) {
    std::mt19937_64 rng(42);
    for (size_t page = 0; page < size / kPage; ++page) {
        if (page % 8 == 7) continue;
        for (size_t off = 0; off < kPage; off += 8) {
            uint64_t v = rng();
            std::memcpy(p + page * kPage + off, &v, 8);
        }
    }
}

struct Dest {
    MemoryDestConfig cfg;
    std::future<MemoryDestResult> result;
    std::string address;

    explicit Dest(Mapping& m) {
        cfg.regions = {Region{m.data(), m.size(), 0, "ram"}};
        cfg.listen_uri = "tcp:127.0.0.1:0";
        cfg.timeout = 60s;
        cfg.step_timeout = 30s;
        address = test::start_receiving(cfg, result);
    }
};

// A guest "vCPU" that only counts, so "running" is observable without
// touching the region compared; pause stops it, resume starts it again.
class Vcpu {
public:
    ~Vcpu() { stop(); }
    void start() {
        stop_ = false;
        thread_ = std::thread([this] {
            while (!stop_) {
                ++ticks_;
                std::this_thread::sleep_for(200us);
            }
        });
    }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    uint64_t ticks() const { return ticks_; }

private:
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> ticks_{0};
    std::thread thread_;
};

// No writes to report (the guest is idle); says when tracking started, which
// the engine does right before round 0 reads anything.
class StartSignal final : public DirtySource {
public:
    void start() override { started_.release(); }
    void collect(DirtyBitmap& snapshot) override { snapshot.clear_all(); }
    void stop() override {}
    bool wait(std::chrono::milliseconds t) { return started_.try_acquire_for(t); }

private:
    std::binary_semaphore started_{0};
};

struct Outcome {
    MemorySourceResult source;
    MemoryDestResult dest;
    Clock::time_point cancelled_at{};
    Clock::time_point source_done{}, dest_done{};
};

MemorySourceConfig base_config(Mapping& src, const std::string& uri) {
    MemorySourceConfig cfg;
    cfg.regions = {Region{src.data(), src.size(), 0, "ram"}};
    cfg.dest_uri = uri;
    cfg.workers = 2;
    cfg.step_timeout = 30s;
    cfg.dirty_log = DirtyLog::uffd_wp;
    return cfg;
}

void expect_cancelled(const Outcome& r, const char* when) {
    EXPECT_FALSE(r.source.ok) << when;
    EXPECT_TRUE(r.source.cancelled) << when << ": " << r.source.error;
    EXPECT_EQ(r.source.error.rfind("migration cancelled by the caller", 0), 0u) << when << ": " << r.source.error;
    EXPECT_FALSE(r.dest.ok) << when;
    EXPECT_NE(r.dest.error.find("aborted: migration cancelled by the caller"), std::string::npos)
        << when << ": destination said " << r.dest.error;
    EXPECT_TRUE(r.dest.device_state.empty()) << when;
    EXPECT_LT(r.source_done - r.cancelled_at, kBound) << when;
    EXPECT_LT(r.dest_done - r.cancelled_at, kBound) << when;
    std::printf("%s: source returned %.1f ms after the cancel, destination %.1f ms; source: \"%s\"; "
                "destination: \"%s\"\n",
                when, std::chrono::duration<double, std::milli>(r.source_done - r.cancelled_at).count(),
                std::chrono::duration<double, std::milli>(r.dest_done - r.cancelled_at).count(),
                r.source.error.c_str(), r.dest.error.c_str());
}

}  // namespace

TEST(MemorySourceCancel, MidRoundFromAnotherThread) {
    const size_t size = 256u << 20;
    Mapping src(size), copy(size), dst(size);
    fill_random(src.data(), size);
    std::memcpy(copy.data(), src.data(), size);
    Dest dest(dst);

    std::stop_source stop;
    bool paused = false, resumed = false;
    MemorySourceConfig cfg = base_config(src, dest.address);
    cfg.codec = Codec::zstd;
    cfg.codec_level = 19;  // round 0 takes seconds: the cancel lands inside it
    cfg.stop = stop.get_token();
    StartSignal tracking;
    cfg.dirty_log = DirtyLog::caller;
    cfg.caller_sources = {&tracking};
    cfg.pause = [&] {
        paused = true;
        return std::vector<std::byte>{};
    };
    cfg.on_failure_resume = [&] { resumed = true; };

    Outcome r;
    std::thread canceller([&] {
        if (tracking.wait(20s)) std::this_thread::sleep_for(50ms);  // round 0 under way
        r.cancelled_at = Clock::now();
        stop.request_stop();
    });
    r.source = migrate_memory(cfg);
    r.source_done = Clock::now();
    canceller.join();
    r.dest = dest.result.get();
    r.dest_done = Clock::now();

    expect_cancelled(r, "mid-round");
    EXPECT_EQ(r.source.rounds, 0u) << "the cancel should have landed inside round 0";
    EXPECT_FALSE(paused);
    EXPECT_FALSE(resumed);
    EXPECT_FALSE(r.source.paused);
    EXPECT_EQ(r.dest.rounds, 0u);
    EXPECT_EQ(std::memcmp(src.data(), copy.data(), size), 0) << "the source memory changed";
}

TEST(MemorySourceCancel, AtSwitchoverAfterPauseTheGuestResumes) {
    const size_t size = 16u << 20;
    Mapping src(size), copy(size), dst(size);
    fill_random(src.data(), size);
    std::memcpy(copy.data(), src.data(), size);
    Dest dest(dst);

    std::stop_source stop;
    Vcpu vcpu;
    Outcome r;
    bool resumed = false;
    bool memory_intact_at_resume = false;
    uint64_t ticks_at_pause = 0;
    MemorySourceConfig cfg = base_config(src, dest.address);
    cfg.stop = stop.get_token();
    cfg.pause = [&] {
        vcpu.stop();
        ticks_at_pause = vcpu.ticks();
        // Another thread cancels while the guest is stopped, before any
        // final page or the device state went out.
        std::thread([&] {
            r.cancelled_at = Clock::now();
            stop.request_stop();
        }).join();
        return std::vector<std::byte>(300000, std::byte{0x5a});
    };
    cfg.on_failure_resume = [&] {
        memory_intact_at_resume = std::memcmp(src.data(), copy.data(), size) == 0;
        resumed = true;
        vcpu.start();
    };
    vcpu.start();
    r.source = migrate_memory(cfg);
    r.source_done = Clock::now();
    r.dest = dest.result.get();
    r.dest_done = Clock::now();

    expect_cancelled(r, "at switchover");
    EXPECT_TRUE(r.source.paused);
    EXPECT_TRUE(resumed);
    EXPECT_TRUE(memory_intact_at_resume) << "the source memory changed";
    EXPECT_GE(r.source.rounds, 1u);
    EXPECT_EQ(r.dest.rounds, r.source.rounds);  // the pre-copy rounds; the final one never started
    auto deadline = Clock::now() + 2s;          // the vCPU runs again
    while (vcpu.ticks() < ticks_at_pause + 10 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    EXPECT_GE(vcpu.ticks(), ticks_at_pause + 10) << "the guest did not run after the cancel";
}

// Reports the same 64 pages dirty at every collect (no page is written), so
// the policy keeps running pre-copy rounds.
class SteadyDirty final : public DirtySource {
public:
    void start() override {}
    void collect(DirtyBitmap& snapshot) override {
        snapshot.clear_all();
        for (size_t p = 0; p < 64; ++p) snapshot.set(p);
    }
    void stop() override {}
};

// The destination stops answering (its round callback, which runs on the
// thread that replies, blocks after round 0) while the source waits for
// round 1's round_done: the cancel cannot reach it, so after cancel_grace
// every channel is shut and the source returns and says so. The destination,
// once it runs again, fails on the channels that are gone.
TEST(MemorySourceCancel, UnresponsiveDestinationIsCutOffAfterTheGrace) {
    const size_t size = 8u << 20;
    Mapping src(size), copy(size), dst(size);
    fill_random(src.data(), size);
    std::memcpy(copy.data(), src.data(), size);
    std::stop_source stop;
    std::thread canceller;
    Clock::time_point cancelled_at{};
    std::binary_semaphore release{0};
    MemoryDestConfig dcfg;
    dcfg.regions = {Region{dst.data(), size, 0, "ram"}};
    dcfg.listen_uri = "tcp:127.0.0.1:0";
    dcfg.timeout = 60s;
    dcfg.step_timeout = 30s;
    std::promise<std::string> listening;
    dcfg.on_listening = [&](const std::string& a) { listening.set_value(a); };
    dcfg.on_round_done = [&](uint64_t round, uint64_t) {
        if (round != 0) return;
        canceller = std::thread([&] {
            std::this_thread::sleep_for(100ms);  // round 1 is sent, its round_done awaited
            cancelled_at = Clock::now();
            stop.request_stop();
        });
        (void)release.try_acquire_for(20s);
    };
    auto dest = std::async(std::launch::async, [&] { return receive_memory(dcfg); });
    auto addr = listening.get_future();
    ASSERT_EQ(addr.wait_for(10s), std::future_status::ready);

    SteadyDirty dirty;
    bool paused = false;
    MemorySourceConfig cfg = base_config(src, addr.get());
    cfg.stop = stop.get_token();
    cfg.cancel_grace = 300ms;
    cfg.dirty_log = DirtyLog::caller;
    cfg.caller_sources = {&dirty};
    cfg.convergence.downtime_budget_ms = 0.001;  // never fits: pre-copy rounds go on
    cfg.pause = [&] {
        paused = true;
        return std::vector<std::byte>{};
    };
    MemorySourceResult r = migrate_memory(cfg);
    auto source_done = Clock::now();
    release.release();
    if (canceller.joinable()) canceller.join();
    MemoryDestResult d = dest.get();

    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(r.cancelled);
    EXPECT_EQ(r.error, "migration cancelled by the caller; the step under way at the cancel timed out after 300 ms, "
                       "channels shut down");
    EXPECT_FALSE(paused);
    EXPECT_EQ(r.rounds, 1u);
    EXPECT_EQ(std::memcmp(src.data(), copy.data(), size), 0);
    auto took = source_done - cancelled_at;
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 300ms + 700ms);
    EXPECT_FALSE(d.ok);
    EXPECT_TRUE(d.device_state.empty());
    std::printf("unresponsive destination: source returned %.0f ms after the cancel: \"%s\"; destination: \"%s\"\n",
                std::chrono::duration<double, std::milli>(took).count(), r.error.c_str(), d.error.c_str());
}

// Cancels landing anywhere in the switchover (final round, device state in
// 1 MiB pieces, confirmation): each run ends either cancelled on both sides
// (guest resumed, destination without device state) or migrated on both
// sides (cancel too late, ignored), never one side each.
TEST(MemorySourceCancel, AnywhereInTheSwitchoverNeverAHalfState) {
    const size_t size = 8u << 20;
    Mapping src(size), copy(size), dst(size);
    fill_random(src.data(), size);
    std::memcpy(copy.data(), src.data(), size);
    const std::vector<std::byte> blob(24u << 20, std::byte{0x3c});
    int cancelled = 0, completed = 0;
    for (int delay_us : {0, 200, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000}) {
        Dest dest(dst);
        std::stop_source stop;
        std::thread canceller;
        bool resumed = false;
        MemorySourceConfig cfg = base_config(src, dest.address);
        cfg.stop = stop.get_token();
        cfg.pause = [&] {
            canceller = std::thread([&, delay_us] {
                std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
                stop.request_stop();
            });
            return blob;
        };
        cfg.on_failure_resume = [&] { resumed = true; };
        auto t0 = Clock::now();
        MemorySourceResult r = migrate_memory(cfg);
        canceller.join();
        MemoryDestResult d = dest.result.get();
        EXPECT_LT(Clock::now() - t0, 10s);
        SCOPED_TRACE(testing::Message() << "cancel " << delay_us << " us after pause: source \"" << r.error
                                        << "\", destination \"" << d.error << "\"");
        EXPECT_EQ(r.ok, d.ok);
        if (r.ok) {
            ++completed;
            EXPECT_FALSE(r.cancelled);
            EXPECT_FALSE(resumed);
            EXPECT_EQ(d.device_state, blob);
            EXPECT_EQ(std::memcmp(dst.data(), src.data(), size), 0);
        } else {
            ++cancelled;
            EXPECT_TRUE(r.cancelled);
            EXPECT_TRUE(resumed);
            EXPECT_TRUE(d.device_state.empty());
            EXPECT_NE(d.error.find("migration cancelled by the caller"), std::string::npos);
        }
        EXPECT_EQ(std::memcmp(src.data(), copy.data(), size), 0);
    }
    std::printf("switchover cancels: %d cancelled on both sides, %d too late and migrated on both\n", cancelled,
                completed);
    EXPECT_GT(cancelled, 0);
}

// A stop requested before the call: nothing connects, nothing is paused.
TEST(MemorySourceCancel, BeforeTheStartNothingHappens) {
    Mapping src(1u << 20);
    std::stop_source stop;
    stop.request_stop();
    MemorySourceConfig cfg = base_config(src, "tcp:127.0.0.1:9");
    cfg.stop = stop.get_token();
    bool paused = false;
    cfg.pause = [&] {
        paused = true;
        return std::vector<std::byte>{};
    };
    auto r = migrate_memory(cfg);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(r.cancelled);
    EXPECT_EQ(r.error, "migration cancelled by the caller");
    EXPECT_FALSE(paused);
}
