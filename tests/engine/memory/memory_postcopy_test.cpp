// Memory-mode post-copy end to end in one process: writer threads dirty the
// source while pre-copy runs, the switch hands the guest to the destination
// with pages still missing, and reader threads there play the running guest:
// every page they touch must already be the source's final page (the fault
// blocked until it was placed). Afterwards both regions must be equal byte
// for byte. Over tcp loopback here; the *Rdma* cases run inside the
// Soft-RoCE VM, where faulted pages are read one-sided from the source.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "common/error.hpp"
#include "engine/dirty/bitmap_source.hpp"
#include "engine/memory/memory_dest.hpp"
#include "engine/memory/memory_source.hpp"
#include "tests/support/anon_mapping.hpp"
#include "tests/support/memory_dest_start.hpp"
#include "tests/support/postcopy_guest.hpp"
#include "tests/support/rdma_uri.hpp"


using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;
using rmig::test::fill;
using rmig::test::Readers;

namespace {

constexpr size_t kPage = 4096;

// Rewrites whole pages of the first `hot` bytes until stopped.
class Writers {
public:
    Writers(std::byte* region, size_t hot, unsigned n) : region_(region), pages_(hot / kPage) {
        for (unsigned i = 0; i < n; ++i)
            threads_.emplace_back([this, i] {
                std::mt19937_64 rng(i + 11);
                uint64_t seq = 0;
                while (!stop_) {
                    size_t page = rng() % pages_;
                    uint64_t v = (uint64_t{i} << 56) ^ (++seq << 16) ^ page;
                    for (size_t off = 0; off < kPage; off += 8) std::memcpy(region_ + page * kPage + off, &v, 8);
                    if (seq % 64 == 0) std::this_thread::sleep_for(100us);
                }
            });
    }
    ~Writers() { stop(); }
    void stop() {
        stop_ = true;
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }

private:
    std::byte* region_;
    size_t pages_;
    std::atomic<bool> stop_{false};
    std::vector<std::thread> threads_;
};

struct Case {
    std::string uri = "tcp:127.0.0.1:0";
    size_t size = 32u << 20;
    size_t hot = 8u << 20;
    unsigned after_rounds = 1;  // 0: by itself
    Codec codec = Codec::none;
    double budget_ms = 300;
    unsigned max_rounds = 30;
    bool pull = true;  // MemorySourceConfig::postcopy.pull
};

struct Outcome {
    MemorySourceResult src;
    MemoryDestResult dst;
    uint64_t read = 0, wrong = 0;
    bool resumed = false;
    int throttled = 0;
    std::vector<std::byte> state;
};

Outcome postcopy(const Case& c) {
    test::AnonMapping source(c.size), dest(c.size);
    fill(source.data(), c.size);
    Outcome out;
    std::unique_ptr<Readers> readers;

    MemoryDestConfig dc;
    dc.regions = {{dest.data(), c.size, 0, "ram"}};
    dc.listen_uri = c.uri;
    dc.step_timeout = 30s;
    dc.timeout = 90s;
    dc.on_postcopy_start = [&](std::span<const std::byte> state) {
        out.state.assign(state.begin(), state.end());
        readers = std::make_unique<Readers>(dest.data(), source.data(), c.size, c.hot, 2);
    };
    std::future<MemoryDestResult> dres;
    const std::string addr = test::start_receiving(dc, dres);

    Writers writers(source.data(), c.hot, 2);
    MemorySourceConfig sc;
    sc.regions = {{source.data(), c.size, 0, "ram"}};
    sc.dest_uri = addr;
    sc.codec = c.codec;
    sc.step_timeout = 30s;
    sc.convergence.downtime_budget_ms = c.budget_ms;
    sc.convergence.max_rounds = c.max_rounds;
    sc.postcopy.enabled = true;
    sc.postcopy.after_rounds = c.after_rounds;
    sc.postcopy.pull = c.pull;
    sc.throttle = [&](unsigned) { ++out.throttled; };
    sc.pause = [&] {
        writers.stop();
        const char s[] = "device state";
        return std::vector<std::byte>(reinterpret_cast<const std::byte*>(s), reinterpret_cast<const std::byte*>(s) + sizeof s);
    };
    sc.on_failure_resume = [&] { out.resumed = true; };
    out.src = migrate_memory(sc);
    out.dst = dres.get();
    if (readers) {
        readers->stop();
        out.read = readers->read();
        out.wrong = readers->wrong();
    }
    EXPECT_EQ(std::memcmp(source.data(), dest.data(), c.size), 0) << "destination differs from the source";
    return out;
}

void expect_postcopy_ok(const Outcome& o) {
    ASSERT_TRUE(o.src.ok) << o.src.error;
    ASSERT_TRUE(o.dst.ok) << o.dst.error;
    ASSERT_TRUE(o.src.postcopy.switched) << "pre-copy switched over instead";
    ASSERT_TRUE(o.dst.postcopy.switched);
    EXPECT_GT(o.src.postcopy.pending_pages, 0u) << "the writers dirtied nothing after round 0?";
    EXPECT_EQ(o.src.postcopy.pending_pages, o.dst.postcopy.pending_pages);
    EXPECT_GT(o.read, 0u) << "the destination's guest never ran";
    EXPECT_EQ(o.wrong, 0u) << "the destination's guest saw pages that were not the source's";
    EXPECT_FALSE(o.resumed);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(o.state.data())), "device state");
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(o.dst.device_state.data())), "device state");
    EXPECT_GT(o.src.downtime_ms, 0);
    EXPECT_GE(o.dst.postcopy.faults, o.dst.postcopy.fetched_pages);
}

}  // namespace

TEST(MemoryPostcopy, AfterOneRoundTheGuestRunsOnTheDestinationAndEveryPageArrives) {
    Outcome o = postcopy({});
    expect_postcopy_ok(o);
    EXPECT_EQ(o.src.rounds, 2u) << "one pre-copy round, then the push";
    EXPECT_EQ(o.src.postcopy.reason, "after 1 round");
    EXPECT_FALSE(o.dst.postcopy.rdma_reads);
    EXPECT_FALSE(o.dst.postcopy.pulled) << "tcp has no one-sided reads: the pages are pushed";
    // Over tcp a fetched page is one the source served (or the push brought
    // it first, and the served copy found it placed).
    EXPECT_GE(o.src.postcopy.served_pages, o.dst.postcopy.fetched_pages);
    EXPECT_GT(o.dst.postcopy.faults, 0u) << "the readers start in the hot area, where pages are missing";
}

TEST(MemoryPostcopy, CompressedPushArrivesByteForByte) {
    Case c;
    c.codec = Codec::lz4;
    Outcome o = postcopy(c);
    expect_postcopy_ok(o);
    EXPECT_GT(o.src.compressed_pages, 0u);
}

TEST(MemoryPostcopy, SwitchesByItselfInsteadOfThrottling) {
    Case c;
    c.after_rounds = 0;
    c.budget_ms = 0.05;  // no round of the writers' hot set fits: the policy wants to throttle
    Outcome o = postcopy(c);
    expect_postcopy_ok(o);
    EXPECT_NE(o.src.postcopy.reason.find("pre-copy would not fit the"), std::string::npos)
        << o.src.postcopy.reason;
    EXPECT_EQ(o.throttled, 0) << "post-copy replaces the throttle";
}

// A VMM whose start callback itself touches missing pages (loading devices
// reads guest memory): the touch blocks until the page is fetched, which
// must not wait for the callback to return.
TEST(MemoryPostcopy, AStartCallbackTouchingMissingPagesIsServed) {
    const size_t size = 16u << 20;
    test::AnonMapping source(size), dest(size);
    fill(source.data(), size);
    std::atomic<uint64_t> touched{0}, wrong{0};
    MemoryDestConfig dc;
    dc.regions = {{dest.data(), size, 0, "ram"}};
    dc.listen_uri = "tcp:127.0.0.1:0";
    dc.step_timeout = 30s;
    dc.on_postcopy_start = [&](std::span<const std::byte>) {
        for (size_t page = 0; page < size / kPage; page += 3) {
            if (std::memcmp(dest.data() + page * kPage, source.data() + page * kPage, kPage) != 0) ++wrong;
            ++touched;
        }
    };
    std::future<MemoryDestResult> dres;
    const std::string addr = test::start_receiving(dc, dres);
    BitmapSource log(size / kPage);
    MemorySourceConfig sc;
    sc.regions = {{source.data(), size, 0, "ram"}};
    sc.dest_uri = addr;
    sc.step_timeout = 30s;
    sc.dirty_log = DirtyLog::caller;
    sc.caller_sources = {&log};
    sc.postcopy.enabled = true;
    sc.postcopy.after_rounds = 1;
    sc.pause = [&] {  // every page pending: the callback's touches all fault
        std::vector<uint64_t> all((size / kPage + 63) / 64, ~uint64_t{0});
        log.submit(all.data(), all.size());
        return std::vector<std::byte>{};
    };
    MemorySourceResult src = migrate_memory(sc);
    MemoryDestResult dst = dres.get();
    ASSERT_TRUE(src.ok) << src.error;
    ASSERT_TRUE(dst.ok) << dst.error;
    EXPECT_EQ(touched.load(), (size / kPage + 2) / 3);
    EXPECT_EQ(wrong.load(), 0u);
    EXPECT_GT(dst.postcopy.faults, 0u);
    EXPECT_EQ(std::memcmp(source.data(), dest.data(), size), 0);
}

// A destination that fails after it started the guest: the source must not
// resume its stale copy, and the destination's VMM is told to stop its guest.
TEST(MemoryPostcopy, DestinationFailingAfterTheStartIsNotResumedOnTheSource) {
    const size_t size = 128u << 20;
    test::AnonMapping source(size), dest(size);
    fill(source.data(), size);
    std::atomic<int> failed_calls{0};
    std::stop_source stop_dest;
    std::thread stopper;
    MemoryDestConfig dc;
    dc.regions = {{dest.data(), size, 0, "ram"}};
    dc.listen_uri = "tcp:127.0.0.1:0";
    dc.stop = stop_dest.get_token();
    dc.on_postcopy_start = [&](std::span<const std::byte>) {
        // Fails the destination once the guest runs, long before 128 MiB could be pushed.
        stopper = std::thread([&] {
            std::this_thread::sleep_for(5ms);
            stop_dest.request_stop();
        });
    };
    dc.on_postcopy_failed = [&](const std::string&) { ++failed_calls; };
    std::future<MemoryDestResult> dres;
    const std::string addr = test::start_receiving(dc, dres);

    // Every page dirty at the switch: a caller-fed log says so.
    BitmapSource log(size / kPage);
    bool resumed = false;
    MemorySourceConfig sc;
    sc.regions = {{source.data(), size, 0, "ram"}};
    sc.dest_uri = addr;
    sc.dirty_log = DirtyLog::caller;
    sc.caller_sources = {&log};
    sc.postcopy.enabled = true;
    sc.postcopy.after_rounds = 1;
    sc.pause = [&] {
        std::vector<uint64_t> all((size / kPage + 63) / 64, ~uint64_t{0});
        log.submit(all.data(), all.size());
        return std::vector<std::byte>{};
    };
    sc.on_failure_resume = [&] { resumed = true; };
    // The destination is gone for good: the source tries to resume for a
    // second, then fails (tests/fault/memory_postcopy_recovery_test.cpp
    // has the link that comes back).
    sc.postcopy.recover = 1s;
    MemorySourceResult src = migrate_memory(sc);
    MemoryDestResult dst = dres.get();
    if (stopper.joinable()) stopper.join();
    ASSERT_FALSE(dst.ok);
    EXPECT_TRUE(dst.postcopy.switched);
    EXPECT_EQ(failed_calls.load(), 1);
    EXPECT_NE(dst.error.find("post-copy had started the guest here"), std::string::npos) << dst.error;
    ASSERT_FALSE(src.ok) << "the source finished although the destination stopped mid push";
    EXPECT_TRUE(src.postcopy.switched);
    EXPECT_FALSE(resumed) << "the source resumed a copy the destination's guest had moved on from";
    EXPECT_NE(src.error.find("was not resumed"), std::string::npos) << src.error;
    EXPECT_NE(src.error.find("recovery window"), std::string::npos) << src.error;
    EXPECT_EQ(src.postcopy.resumed, 0u);
}

// Refused at the layout exchange, before the guest was ever paused.
TEST(MemoryPostcopy, DestinationWithoutPostcopyRefusesBeforeAnythingMoves) {
    const size_t size = 8u << 20;
    test::AnonMapping source(size), dest(size);
    fill(source.data(), size);
    MemoryDestConfig dc;
    dc.regions = {{dest.data(), size, 0, "ram"}};
    dc.listen_uri = "tcp:127.0.0.1:0";
    std::future<MemoryDestResult> dres;
    const std::string addr = test::start_receiving(dc, dres);
    bool resumed = false;
    MemorySourceConfig sc;
    sc.regions = {{source.data(), size, 0, "ram"}};
    sc.dest_uri = addr;
    sc.postcopy.enabled = true;
    sc.postcopy.after_rounds = 1;
    sc.pause = [] { return std::vector<std::byte>{}; };
    sc.on_failure_resume = [&] { resumed = true; };
    MemorySourceResult src = migrate_memory(sc);
    MemoryDestResult dst = dres.get();
    EXPECT_FALSE(dst.ok);
    ASSERT_FALSE(src.ok);
    EXPECT_FALSE(src.paused) << "the refusal should come with the layout, before the pause";
    EXPECT_FALSE(resumed);
    EXPECT_FALSE(src.postcopy.switched);
    EXPECT_NE(src.error.find("does not take post-copy"), std::string::npos) << src.error;
}

// ---- over rdma: inside the Soft-RoCE VM (ctest -R memory_postcopy_over_rdma_in_softroce_vm)
TEST(MemoryPostcopyRdma, FaultsAreReadOneSidedAndEveryPageArrives) {
    const std::string uri = test::rdma_test_uri();
    if (uri.empty())
        GTEST_SKIP() << "no RDMA device on this machine (or built without rdma); this case runs inside the "
                        "Soft-RoCE VM (ctest -R memory_postcopy_over_rdma_in_softroce_vm)";
    Case c;
    c.uri = uri;
    c.size = 16u << 20;
    c.hot = 4u << 20;
    Outcome o = postcopy(c);
    expect_postcopy_ok(o);
    EXPECT_TRUE(o.dst.postcopy.rdma_reads) << "faulted pages should be read one-sided over rdma";
    EXPECT_EQ(o.src.postcopy.served_pages, 0u) << "with one-sided reads the source serves no requests";
    // The pending pages were pulled by the destination, none pushed.
    EXPECT_TRUE(o.src.postcopy.pulled);
    EXPECT_TRUE(o.dst.postcopy.pulled);
    EXPECT_EQ(o.src.postcopy.pushed_bytes, 0u);
    EXPECT_EQ(o.dst.postcopy.pulled_pages + o.dst.postcopy.fetched_pages, o.dst.postcopy.pending_pages)
        << "every pending page placed once, by the pull or a fault";
}

TEST(MemoryPostcopyRdma, WithoutThePullThePendingPagesArePushed) {
    const std::string uri = test::rdma_test_uri();
    if (uri.empty())
        GTEST_SKIP() << "no RDMA device on this machine (or built without rdma); this case runs inside the "
                        "Soft-RoCE VM (ctest -R memory_postcopy_over_rdma_in_softroce_vm)";
    Case c;
    c.uri = uri;
    c.size = 16u << 20;
    c.hot = 4u << 20;
    c.pull = false;
    Outcome o = postcopy(c);
    expect_postcopy_ok(o);
    EXPECT_TRUE(o.dst.postcopy.rdma_reads);
    EXPECT_FALSE(o.src.postcopy.pulled);
    EXPECT_FALSE(o.dst.postcopy.pulled);
    EXPECT_GT(o.src.postcopy.pushed_bytes, 0u);
}
