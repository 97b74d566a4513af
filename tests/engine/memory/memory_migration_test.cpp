// Memory mode end to end in one process over tcp loopback: a source region
// that writer threads keep dirtying while it migrates, a destination that must
// end up equal byte for byte, and a destination that dies mid-migration,
// which must leave the source exactly as the writers made it.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <algorithm>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "common/error.hpp"
#include "engine/dirty/bitmap_source.hpp"
#include "engine/memory/memory_dest.hpp"
#include "engine/memory/memory_source.hpp"
#include "transport/control_channel.hpp"
#include "tests/support/anon_mapping.hpp"
#include "transport/channel.hpp"
#include "tests/support/memory_dest_start.hpp"
#include "tests/support/rdma_uri.hpp"


using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;

namespace {

constexpr size_t kPage = 4096;

using Mapping = test::AnonMapping;

// Recognizable content: every 64-byte block names its page and a version;
// every fourth page stays zero so zero markers get exercised.
void fill_initial(std::byte* p, size_t size) {
    for (size_t page = 0; page < size / kPage; ++page) {
        if (page % 4 == 3) continue;
        for (size_t off = 0; off < kPage; off += 8) {
            uint64_t v = (uint64_t{page} << 20) ^ off ^ 0x5a5a000000000000ULL;
            std::memcpy(p + page * kPage + off, &v, 8);
        }
    }
}

// Writer threads: a hot set plus uniform random writes, each a 64-byte
// pattern (writer, sequence, page), mirrored into a shadow copy the test
// compares against. Writer i owns the pages with page % n == i, so region and
// shadow agree whatever the interleaving.
class Writers {
public:
    Writers(std::byte* region, std::byte* shadow, size_t size, unsigned n, size_t hot_bytes,
            DirtyBitmap* log = nullptr)
        : region_(region), shadow_(shadow), pages_(size / kPage), hot_pages_(hot_bytes / kPage), n_(n),
          log_(log) {}
    ~Writers() { stop(); }

    void start() {
        for (unsigned i = 0; i < n_; ++i) threads_.emplace_back([this, i] { run(i); });
    }
    void stop() {
        stop_ = true;
        for (auto& t : threads_)
            if (t.joinable()) t.join();
        threads_.clear();
    }
    uint64_t writes() const { return writes_; }
    // Auto-converge: a throttled writer sleeps longer between bursts.
    void throttle(unsigned percent) { throttle_ = percent; }

private:
    void run(unsigned id) {
        std::mt19937_64 rng(id * 7919 + 1);
        uint64_t seq = 0;
        const size_t hot_base = pages_ / 4;  // the hot set sits a quarter into the region
        while (!stop_) {
            for (int k = 0; k < 16; ++k) {
                size_t page = (rng() % 10 < 7) ? hot_base + rng() % hot_pages_ : rng() % pages_;
                page = page - page % n_ + id;  // a page this writer owns
                if (page >= pages_) page = id;
                size_t off = (rng() % (kPage / 64)) * 64;
                uint64_t block[8];
                for (uint64_t w = 0; w < 8; ++w) block[w] = (uint64_t{id} << 56) ^ (++seq << 20) ^ page ^ w;
                std::memcpy(region_ + page * kPage + off, block, 64);
                std::memcpy(shadow_ + page * kPage + off, block, 64);
                if (log_) log_->set(page);  // after the write, as KVM's log would
            }
            writes_ += 16;
            std::this_thread::sleep_for(1ms * 100 / (100 - std::min(throttle_.load(), 99u)));
        }
    }

    std::byte* region_;
    std::byte* shadow_;
    size_t pages_, hot_pages_;
    unsigned n_;
    DirtyBitmap* log_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> writes_{0};
    std::atomic<unsigned> throttle_{0};
    std::vector<std::thread> threads_;
};

// Plays the VMM for the caller-fed dirty log: moves the writers' bitmap into
// the BitmapSource every few ms, and once more on demand.
class LogFeeder {
public:
    LogFeeder(DirtyBitmap& log, BitmapSource& source)
        : log_(log), source_(source), tmp_(log.pages(), log.page_size()), words_(log.words()) {
        thread_ = std::thread([this] {
            while (!stop_) {
                feed();
                std::this_thread::sleep_for(2ms);
            }
        });
    }
    ~LogFeeder() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        feed();  // whatever the writers marked last
    }

private:
    void feed() {
        std::lock_guard lock(mu_);
        log_.take(tmp_);
        for (size_t w = 0; w < words_.size(); ++w) words_[w] = tmp_.word(w);
        source_.submit(words_.data(), words_.size());
    }
    DirtyBitmap& log_;
    BitmapSource& source_;
    DirtyBitmap tmp_;
    std::vector<uint64_t> words_;
    std::mutex mu_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

std::vector<std::byte> blob_bytes(const std::string& s) {
    auto b = std::as_bytes(std::span(s.data(), s.size()));
    return {b.begin(), b.end()};
}

struct Dest {
    MemoryDestConfig cfg;
    std::stop_source stop;
    std::future<MemoryDestResult> result;
    std::string address;

    Dest(Mapping& m, std::function<void(uint64_t, uint64_t)> on_round = {},
         const std::string& listen_uri = "tcp:127.0.0.1:0") {
        cfg.regions = {Region{m.data(), m.size(), 0, "ram"}};
        cfg.listen_uri = listen_uri;
        cfg.timeout = 100s;
        cfg.step_timeout = 30s;
        cfg.stop = stop.get_token();
        cfg.on_round_done = std::move(on_round);
        address = test::start_receiving(cfg, result);
    }
};

enum class Tracking { uffd, bitmap };

struct LoadCase {
    size_t size = 128u << 20;
    size_t hot_bytes = 16u << 20;
    double downtime_budget_ms = 2;
    unsigned max_rounds = 30;
    unsigned min_samples = 1;
    std::string listen_uri = "tcp:127.0.0.1:0";
};

void migrate_under_load(Codec codec, Tracking tracking, const LoadCase& lc = {}) {
    const size_t kSize = lc.size;
    Mapping src(kSize), shadow(kSize), dst(kSize);
    fill_initial(src.data(), kSize);
    std::memcpy(shadow.data(), src.data(), kSize);

    DirtyBitmap log(kSize / kPage, kPage);
    BitmapSource bitmap_source(kSize / kPage, kPage);
    Writers writers(src.data(), shadow.data(), kSize, 2, lc.hot_bytes,
                    tracking == Tracking::bitmap ? &log : nullptr);
    std::unique_ptr<LogFeeder> feeder;
    if (tracking == Tracking::bitmap) feeder = std::make_unique<LogFeeder>(log, bitmap_source);

    Dest dest(dst, {}, lc.listen_uri);
    // Larger than an rdma ring slot (256 KiB), so it crosses in pieces there.
    std::string state = "device-state: vcpu0 rip=0xfff0;";
    while (state.size() < (600u << 10)) state += std::to_string(state.size()) + ",";
    const auto blob = blob_bytes(state);
    bool resumed = false;
    unsigned throttled = 0;
    MemorySourceConfig cfg;
    cfg.regions = {Region{src.data(), kSize, 0, "ram"}};
    cfg.dest_uri = dest.address;
    cfg.workers = 2;
    cfg.codec = codec;
    // Tight enough that the dirty hot set needs more than one dirty round
    // (and sometimes the throttle) on loopback.
    cfg.convergence.downtime_budget_ms = lc.downtime_budget_ms;
    cfg.convergence.max_rounds = lc.max_rounds;
    cfg.convergence.min_samples = lc.min_samples;
    cfg.step_timeout = 30s;
    if (tracking == Tracking::bitmap) {
        cfg.dirty_log = DirtyLog::caller;
        cfg.caller_sources = {&bitmap_source};
    }
    cfg.throttle = [&](unsigned p) {
        throttled = p;
        writers.throttle(p);
    };
    cfg.pause = [&] {
        writers.stop();
        if (feeder) feeder->stop();
        return blob;
    };
    cfg.on_failure_resume = [&] { resumed = true; };

    writers.start();
    std::this_thread::sleep_for(50ms);  // tracking must cope with writes already under way
    auto t0 = std::chrono::steady_clock::now();
    MemorySourceResult r = migrate_memory(cfg);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    writers.stop();
    MemoryDestResult d = dest.result.get();

    ASSERT_TRUE(r.ok) << r.error << "\n(destination: " << d.error << ")";
    ASSERT_TRUE(d.ok) << d.error;
    EXPECT_FALSE(resumed);
    EXPECT_TRUE(r.paused);
    EXPECT_EQ(d.device_state, blob);
    // The downtime's parts, in order, add up to at most the whole.
    const SwitchoverTimes& sw = r.switchover;
    for (double part : {sw.pause_ms, sw.collect_ms, sw.final_round_ms, sw.device_state_ms, sw.placed_ms, sw.confirm_ms})
        EXPECT_GE(part, 0.0);
    EXPECT_LE(sw.pause_ms + sw.collect_ms + sw.final_round_ms + sw.device_state_ms + sw.placed_ms + sw.confirm_ms,
              r.downtime_ms + 0.01);
    EXPECT_GT(r.downtime_ms, 0.0);
    EXPECT_FALSE(r.placement.empty());
    EXPECT_FALSE(d.placement.empty());
    EXPECT_EQ(d.rounds, r.rounds);
    EXPECT_EQ(d.pages_placed, r.pages_sent);
    EXPECT_GE(r.rounds, 2u);  // the full round and at least the final one
    EXPECT_GE(r.rounds, lc.min_samples + 1);
    EXPECT_GT(r.zero_pages, 0u);
    if (codec != Codec::none) {
        EXPECT_GT(r.compressed_pages, 0u);
    }
    // Over rdma without a codec the non-zero pages go one-sided; otherwise
    // (tcp, or a codec) every page travels in batches.
    const bool rdma = lc.listen_uri.rfind("rdma:", 0) == 0;
    EXPECT_EQ(d.one_sided, rdma && codec == Codec::none);
    // rdma names its device, so placement starts from it (rxe has no PCI
    // parent: its locality is unknown and the memory's node decides).
    if (rdma) {
        EXPECT_NE(r.placement.find("NIC "), std::string::npos) << r.placement;
        EXPECT_NE(d.placement.find("NIC "), std::string::npos) << d.placement;
    }
    if (rdma && codec == Codec::none) {
        EXPECT_GT(r.one_sided_pages, 0u) << r.page_path;
        EXPECT_EQ(r.one_sided_pages + r.zero_pages, r.pages_sent);
    } else {
        EXPECT_EQ(r.one_sided_pages, 0u) << r.page_path;
    }
    EXPECT_EQ(std::memcmp(src.data(), shadow.data(), kSize), 0) << "the engine modified the source";
    // Byte for byte; on failure name the first differing page.
    if (std::memcmp(src.data(), dst.data(), kSize) != 0) {
        for (size_t p = 0; p < kSize / kPage; ++p)
            if (std::memcmp(src.data() + p * kPage, dst.data() + p * kPage, kPage) != 0) {
                ADD_FAILURE() << "destination differs first at page " << p;
                break;
            }
    }
    std::printf("[ info ] %s; codec %s, %s: %u rounds, %llu pages (%llu zero, %llu compressed), %.1f MiB "
                "on the wire, %llu writes, %.2f s, downtime %.1f ms, throttle %u%%; %s\n",
                r.page_path.c_str(), std::string(to_string(codec)).c_str(), tracking == Tracking::uffd ? "uffd-wp" : "bitmap",
                r.rounds, static_cast<unsigned long long>(r.pages_sent),
                static_cast<unsigned long long>(r.zero_pages),
                static_cast<unsigned long long>(r.compressed_pages),
                static_cast<double>(r.bytes_sent) / (1 << 20),
                static_cast<unsigned long long>(writers.writes()), secs, r.downtime_ms, throttled,
                r.last_decision.c_str());
    std::printf("[ info ] placement: %s\n", r.placement.c_str());
}

}  // namespace

TEST(MemoryMigration, UffdUnderLoadArrivesByteForByte) { migrate_under_load(Codec::none, Tracking::uffd); }

TEST(MemoryMigration, Lz4UnderLoadArrivesByteForByte) { migrate_under_load(Codec::lz4, Tracking::uffd); }

TEST(MemoryMigration, CallerFedBitmapArrivesByteForByte) {
    migrate_under_load(Codec::none, Tracking::bitmap);
}

namespace {

// The destination vanishes after the first round, before any switchover.
void destination_dies_midway(const std::string& listen_uri) {
    constexpr size_t kSize = 32u << 20;
    Mapping src(kSize), shadow(kSize), dst(kSize);
    fill_initial(src.data(), kSize);
    std::memcpy(shadow.data(), src.data(), kSize);
    Writers writers(src.data(), shadow.data(), kSize, 2, 4u << 20);

    std::stop_source* kill = nullptr;
    Dest dest(
        dst,
        [&](uint64_t round, uint64_t) {
            if (round == 0) kill->request_stop();
        },
        listen_uri);
    kill = &dest.stop;
    bool paused = false, resumed = false;
    MemorySourceConfig cfg;
    cfg.regions = {Region{src.data(), kSize, 0, "ram"}};
    cfg.dest_uri = dest.address;
    cfg.workers = 2;
    cfg.convergence.downtime_budget_ms = 1e-6;  // never fits: keep pre-copying until killed
    cfg.step_timeout = 20s;
    cfg.pause = [&] {
        paused = true;
        writers.stop();
        return std::vector<std::byte>{};
    };
    cfg.on_failure_resume = [&] { resumed = true; };

    writers.start();
    auto t0 = std::chrono::steady_clock::now();
    MemorySourceResult r = migrate_memory(cfg);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    writers.stop();
    MemoryDestResult d = dest.result.get();

    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.error.empty());
    EXPECT_FALSE(d.ok);
    EXPECT_NE(d.error.find("stopped by its caller"), std::string::npos) << d.error;
    EXPECT_EQ(d.error.find("stopped by its caller"), d.error.rfind("stopped by its caller")) << d.error;
    EXPECT_EQ(r.paused, paused);
    EXPECT_EQ(resumed, paused);
    EXPECT_LT(secs, 15.0) << "a vanished peer must be noticed promptly";
    EXPECT_EQ(std::memcmp(src.data(), shadow.data(), kSize), 0) << "the engine modified the source";
    std::printf("[ info ] source failed after %.2f s: %s\n", secs, r.error.c_str());
}

}  // namespace

TEST(MemoryMigration, DestinationDyingMidwayLeavesTheSourceUntouched) {
    destination_dies_midway("tcp:127.0.0.1:0");
}

// The destination vanishes while the source is paused for switchover: the
// source must resume its caller.
TEST(MemoryMigration, DestinationDyingAtSwitchoverResumesTheCaller) {
    constexpr size_t kSize = 32u << 20;
    Mapping src(kSize), shadow(kSize), dst(kSize);
    fill_initial(src.data(), kSize);
    std::memcpy(shadow.data(), src.data(), kSize);
    Writers writers(src.data(), shadow.data(), kSize, 2, 4u << 20);

    Dest dest(dst);
    bool resumed = false;
    MemorySourceConfig cfg;
    cfg.regions = {Region{src.data(), kSize, 0, "ram"}};
    cfg.dest_uri = dest.address;
    cfg.workers = 2;
    cfg.convergence.downtime_budget_ms = 1e6;  // switch over right after round 0
    cfg.step_timeout = 20s;
    cfg.pause = [&] {
        writers.stop();
        dest.stop.request_stop();
        dest.result.wait();  // the destination is gone before the last round goes out
        return blob_bytes("state");
    };
    cfg.on_failure_resume = [&] { resumed = true; };

    writers.start();
    MemorySourceResult r = migrate_memory(cfg);
    writers.stop();
    MemoryDestResult d = dest.result.get();

    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(r.paused);
    EXPECT_TRUE(resumed);
    EXPECT_FALSE(d.ok);
    EXPECT_TRUE(d.device_state.empty());
    EXPECT_EQ(std::memcmp(src.data(), shadow.data(), kSize), 0) << "the engine modified the source";
    std::printf("[ info ] source failed at switchover: %s\n", r.error.c_str());
}

TEST(MemoryMigration, LayoutMismatchIsRefusedBeforeAnyPageMoves) {
    Mapping src(4u << 20), dst(8u << 20);
    Dest dest(dst);
    MemorySourceConfig cfg;
    cfg.regions = {Region{src.data(), src.size(), 0, "ram"}};
    cfg.dest_uri = dest.address;
    cfg.pause = [] { return std::vector<std::byte>{}; };
    MemorySourceResult r = migrate_memory(cfg);
    MemoryDestResult d = dest.result.get();
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("layout: region 'ram' is 4194304 bytes there, 8388608 here"),
              std::string::npos)
        << r.error;
    EXPECT_FALSE(d.ok);
    EXPECT_EQ(r.rounds, 0u);
}

// A device state larger than the buffer the destination touched in advance
// (16 MiB), in many pieces, arrives whole and in order.
TEST(MemoryMigration, DeviceStateLargerThanThePretouchedBufferArrivesWhole) {
    constexpr size_t kSize = 8u << 20;
    Mapping src(kSize), dst(kSize);
    fill_initial(src.data(), kSize);
    Dest dest(dst);
    std::vector<std::byte> blob((20u << 20) + 4321);
    for (size_t i = 0; i < blob.size(); ++i) blob[i] = std::byte(static_cast<uint8_t>(i * 2654435761u >> 13));
    MemorySourceConfig cfg;
    cfg.regions = {Region{src.data(), kSize, 0, "ram"}};
    cfg.dest_uri = dest.address;
    cfg.convergence.downtime_budget_ms = 1e6;  // switch over right after round 0
    cfg.pause = [&] { return blob; };
    MemorySourceResult r = migrate_memory(cfg);
    MemoryDestResult d = dest.result.get();
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_TRUE(d.ok) << d.error;
    EXPECT_TRUE(d.device_state == blob);
    EXPECT_EQ(std::memcmp(src.data(), dst.data(), kSize), 0);
}

// A destination that accepts the session and the layout, then stops reading
// and answering (a hung host, not a closed socket): the source's step timeout
// must end the migration with a reason that says so.
TEST(MemoryMigration, HungDestinationTimesOutWithAReason) {
    constexpr size_t kSize = 32u << 20;
    Mapping src(kSize);
    fill_initial(src.data(), kSize);
    auto listener = transport::listen("tcp:127.0.0.1:0");
    std::promise<void> source_done;
    auto hung = std::async(std::launch::async, [&] {
        std::vector<std::unique_ptr<transport::Channel>> chans;
        while (chans.size() < 3) {
            auto in = listener->next(5000ms);
            if (!in) throw Error("source did not connect");
            wire::Hello reply = in->hello();
            reply.role = wire::Role::destination;
            chans.push_back(in->accept(reply));
        }
        auto msg = transport::recv_message(*chans[0]);
        EXPECT_EQ(msg.value("op", ""), "layout");
        transport::send_message(*chans[0], {{"ok", true}});
        source_done.get_future().wait();  // never reads another byte
    });
    MemorySourceConfig cfg;
    cfg.regions = {Region{src.data(), kSize, 0, "ram"}};
    cfg.dest_uri = listener->address();
    cfg.workers = 2;
    cfg.step_timeout = 1000ms;
    cfg.pause = [] { return std::vector<std::byte>{}; };
    auto t0 = std::chrono::steady_clock::now();
    MemorySourceResult r = migrate_memory(cfg);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    source_done.set_value();
    hung.get();
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("round 0 timed out after 1000 ms"), std::string::npos) << r.error;
    EXPECT_LT(secs, 5.0);
    std::printf("[ info ] after %.2f s: %s\n", secs, r.error.c_str());
}

// ---- over rdma: run inside the Soft-RoCE VM (ctest -R memory_mode_over_rdma_in_softroce_vm)
// or on a host with an RDMA device; RMIG_RDMA_ADDR names its IP (default: the
// VM's 10.11.12.1). Small regions: the VM's CPU is emulated.
namespace {

#define RDMA_URI_OR_SKIP(var)                                                                   \
    const std::string var = test::rdma_test_uri();                                               \
    if (var.empty())                                                                            \
    GTEST_SKIP() << "no RDMA device on this machine (or built without rdma); these cases run " \
                    "inside the Soft-RoCE VM (ctest -R memory_mode_over_rdma_in_softroce_vm)"

LoadCase rdma_case(const std::string& uri) {
    LoadCase lc;
    lc.size = 32u << 20;
    lc.hot_bytes = 4u << 20;
    // rxe under TCG moves 10-100 MB/s (less on a loaded machine or under
    // ASan): a budget that takes a dirty round or more at those rates, and
    // room for the rounds (and throttle steps) a slow run needs.
    lc.downtime_budget_ms = 200;
    lc.max_rounds = 60;
    // At least one dirty pre-copy round while the writers run, however
    // fast the link: no switchover before two bandwidth samples.
    lc.min_samples = 2;
    lc.listen_uri = uri;
    return lc;
}

}  // namespace

TEST(MemoryMigrationRdma, OneSidedUnderLoadArrivesByteForByte) {
    RDMA_URI_OR_SKIP(uri);
    migrate_under_load(Codec::none, Tracking::uffd, rdma_case(uri));
}

TEST(MemoryMigrationRdma, CallerFedBitmapOneSidedArrivesByteForByte) {
    RDMA_URI_OR_SKIP(uri);
    migrate_under_load(Codec::none, Tracking::bitmap, rdma_case(uri));
}

// Compression needs the receiver to decompress: over rdma a codec falls back
// to two-sided page batches.
TEST(MemoryMigrationRdma, Lz4FallsBackToBatchesAndArrivesByteForByte) {
    RDMA_URI_OR_SKIP(uri);
    auto lc = rdma_case(uri);
    lc.size = 16u << 20;
    lc.hot_bytes = 2u << 20;
    lc.downtime_budget_ms = 1000;  // lz4 under TCG is CPU-bound: a few MB/s
    migrate_under_load(Codec::lz4, Tracking::uffd, lc);
}

TEST(MemoryMigrationRdma, DestinationDyingMidwayLeavesTheSourceUntouched) {
    RDMA_URI_OR_SKIP(uri);
    destination_dies_midway(uri);
}
