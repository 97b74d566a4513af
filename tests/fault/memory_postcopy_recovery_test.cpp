// Memory-mode post-copy when the link breaks after the guest started on the
// destination: source and destination in one process over tcp loopback with
// lab::FaultProxy between them (rate-limited, so the break lands mid push).
// Every page is pending at the switch (a caller-fed dirty log says so) and
// reader threads play the guest on the destination, comparing every page
// they touch with the source's.
//   - link down for a while (resets, or silent), back within the recovery
//     window: both sides resume over new channels, and every page arrives
//     byte for byte;
//   - link down for longer than the window: both fail, the source is not
//     resumed and the destination's VMM is told to stop its guest.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "engine/dirty/bitmap_source.hpp"
#include "engine/memory/memory_dest.hpp"
#include "engine/memory/memory_source.hpp"
#include "lab/fault_proxy.hpp"
#include "security/context.hpp"
#include "tests/support/anon_mapping.hpp"
#include "tests/support/memory_dest_start.hpp"
#include "tests/support/postcopy_guest.hpp"

using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;

namespace {

constexpr size_t kPage = test::kGuestPage;
constexpr size_t kSize = 64u << 20;

struct Outcome {
    MemorySourceResult src;
    MemoryDestResult dst;
    uint64_t read = 0, wrong = 0;
    bool source_resumed = false;
    int failed_calls = 0;
    bool fault_applied = false;
    bool equal = false;
};

// `down`: how long the link stays down once ~4 MiB of the push went through;
// `window`: both sides' recovery window; `secure`: authenticated and
// encrypted channels (pre-shared key), which the new channels must pass too.
Outcome run(std::chrono::milliseconds down, std::chrono::milliseconds window, bool secure = false,
            lab::LinkFault fault = lab::LinkFault::down, std::chrono::milliseconds step = 20s) {
    std::shared_ptr<security::Context> sec;
    if (secure) {
        security::Config c;
        c.psk.assign(32, 0x5a);
        sec = security::Context::create(c);
    }
    test::AnonMapping source(kSize), dest(kSize);
    test::fill(source.data(), kSize);
    Outcome out;
    std::unique_ptr<test::Readers> readers;
    std::atomic<bool> started{false};
    std::atomic<int> failed_calls{0};
    lab::FaultProxy* link = nullptr;

    MemoryDestConfig dc;
    dc.regions = {{dest.data(), kSize, 0, "ram"}};
    dc.listen_uri = "tcp:127.0.0.1:0";
    dc.step_timeout = step;
    dc.timeout = 60s;
    dc.postcopy_recover = window;
    dc.security = sec;
    dc.on_postcopy_start = [&](std::span<const std::byte>) {
        // Slow from here (pre-copy ran at full speed, inside any step):
        // the 64 MiB push then takes ~1.4 s and the break lands in it.
        link->limit_rate(48u << 20);
        readers = std::make_unique<test::Readers>(dest.data(), source.data(), kSize, kSize, 2);
        started = true;
    };
    dc.on_postcopy_failed = [&](const std::string&) {
        ++failed_calls;
        if (readers) readers->request_stop();  // as a VMM stops its vCPUs (joined once faults are released)
    };
    std::future<MemoryDestResult> dres;
    const std::string addr = test::start_receiving(dc, dres);
    lab::FaultProxy proxy(addr);
    link = &proxy;

    // Once the guest runs and ~8 MiB of the push went through, the link goes down.
    std::thread cutter([&] {
        for (int i = 0; i < 3000 && !started; ++i) std::this_thread::sleep_for(5ms);
        if (!started) return;
        const uint64_t base = proxy.forwarded(1);
        for (int i = 0; i < 3000 && proxy.forwarded(1) < base + (4u << 20); ++i) std::this_thread::sleep_for(1ms);
        proxy.apply(fault, 0, 0, down);
        out.fault_applied = true;
    });

    BitmapSource log(kSize / kPage);
    MemorySourceConfig sc;
    sc.regions = {{source.data(), kSize, 0, "ram"}};
    sc.dest_uri = proxy.address();
    sc.workers = 2;
    sc.step_timeout = step;
    sc.dirty_log = DirtyLog::caller;
    sc.caller_sources = {&log};
    sc.postcopy.enabled = true;
    sc.postcopy.after_rounds = 1;
    sc.postcopy.recover = window;
    sc.security = sec;
    sc.pause = [&] {  // every page pending at the switch
        std::vector<uint64_t> all((kSize / kPage + 63) / 64, ~uint64_t{0});
        log.submit(all.data(), all.size());
        return std::vector<std::byte>{};
    };
    sc.on_failure_resume = [&] { out.source_resumed = true; };
    out.src = migrate_memory(sc);
    out.dst = dres.get();
    cutter.join();
    if (readers) {
        readers->stop();
        out.read = readers->read();
        out.wrong = readers->wrong();
    }
    out.failed_calls = failed_calls;
    out.equal = std::memcmp(source.data(), dest.data(), kSize) == 0;
    return out;
}

}  // namespace

TEST(MemoryPostcopyRecovery, ALinkDownMidPushIsResumedAndEveryPageArrives) {
    Outcome o = run(1500ms, 30s);
    ASSERT_TRUE(o.fault_applied) << "the link never went down mid push";
    ASSERT_TRUE(o.src.ok) << o.src.error;
    ASSERT_TRUE(o.dst.ok) << o.dst.error;
    EXPECT_TRUE(o.src.postcopy.switched);
    EXPECT_GE(o.src.postcopy.resumed, 1u);
    EXPECT_GE(o.dst.postcopy.resumed, 1u);
    EXPECT_FALSE(o.src.postcopy.broke.empty());
    EXPECT_FALSE(o.dst.postcopy.broke.empty());
    EXPECT_EQ(o.src.session, o.dst.session) << "resumed as the same session";
    EXPECT_TRUE(o.equal) << "destination differs from the source";
    EXPECT_GT(o.read, 0u) << "the destination's guest never ran";
    EXPECT_EQ(o.wrong, 0u) << "the guest saw pages that were not the source's";
    EXPECT_EQ(o.failed_calls, 0);
    EXPECT_FALSE(o.source_resumed);
    EXPECT_GT(o.dst.postcopy.faults, 0u);
}

TEST(MemoryPostcopyRecovery, SecuredChannelsAreResumedToo) {
    Outcome o = run(1000ms, 30s, true);
    ASSERT_TRUE(o.fault_applied) << "the link never went down mid push";
    ASSERT_TRUE(o.src.ok) << o.src.error;
    ASSERT_TRUE(o.dst.ok) << o.dst.error;
    EXPECT_GE(o.src.postcopy.resumed, 1u);
    EXPECT_GE(o.dst.postcopy.resumed, 1u);
    EXPECT_TRUE(o.equal) << "destination differs from the source";
    EXPECT_EQ(o.wrong, 0u);
}

// A link that goes silent (no resets: packets just stop) for 5 s: the
// destination sees no missing page arrive for a step (2 s) and treats the
// link as lost; the source learns it once the link carries the close.
TEST(MemoryPostcopyRecovery, ASilentOutageIsResumedToo) {
    Outcome o = run(5000ms, 30s, false, lab::LinkFault::outage, 2s);
    ASSERT_TRUE(o.fault_applied) << "the link never went down mid push";
    ASSERT_TRUE(o.src.ok) << o.src.error;
    ASSERT_TRUE(o.dst.ok) << o.dst.error;
    EXPECT_GE(o.src.postcopy.resumed, 1u);
    EXPECT_GE(o.dst.postcopy.resumed, 1u);
    EXPECT_NE(o.dst.postcopy.broke.find("stalled"), std::string::npos) << o.dst.postcopy.broke;
    EXPECT_TRUE(o.equal) << "destination differs from the source";
    EXPECT_EQ(o.wrong, 0u);
}

TEST(MemoryPostcopyRecovery, ALinkDownPastTheWindowFailsBothSidesSafely) {
    Outcome o = run(20s, 1500ms);
    ASSERT_TRUE(o.fault_applied) << "the link never went down mid push";
    ASSERT_FALSE(o.src.ok);
    ASSERT_FALSE(o.dst.ok);
    EXPECT_TRUE(o.src.postcopy.switched);
    EXPECT_EQ(o.src.postcopy.resumed, 0u);
    EXPECT_NE(o.src.error.find("recovery window"), std::string::npos) << o.src.error;
    EXPECT_NE(o.src.error.find("was not resumed"), std::string::npos) << o.src.error;
    EXPECT_NE(o.dst.error.find("recovery window"), std::string::npos) << o.dst.error;
    EXPECT_FALSE(o.source_resumed) << "the source resumed a copy the destination's guest had moved on from";
    EXPECT_EQ(o.failed_calls, 1) << "the destination's VMM must be told to stop its guest";
    // (A reader blocked on a missing page reads zeros once faults are
    // released after the failure: a VMM's vCPUs are stopped by then.)
}
