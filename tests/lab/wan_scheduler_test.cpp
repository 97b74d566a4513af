// The WAN emulator's per-direction model (lab/wan/packet_scheduler.hpp) on an
// injected clock: rate, delay, drop-tail, random and burst loss, reordering and
// outages each do what they say, reproducibly for a seed. No root, no network.
#include <gtest/gtest.h>

#include <atomic>

#include <cmath>
#include <vector>

#include "lab/wan/packet_scheduler.hpp"

using namespace rmig::wan;
using namespace std::chrono_literals;

namespace {

Nanos at_us(int64_t us) {
    return Nanos(us * 1000);
}

// Bounds of a binomial count: mean +/- 4.5 standard deviations (a fixed seed
// makes the draw fixed; the bound says the model is right, not the seed lucky).
struct Range {
    double lo, hi;
};
Range binomial(double n, double p) {
    double mean = n * p, sd = std::sqrt(n * p * (1 - p));
    return {mean - 4.5 * sd, mean + 4.5 * sd};
}

}  // namespace

TEST(WanScheduler, RateHoldsOverManyPacketsOfMixedSizes) {
    LinkShape s;
    s.rate_bps = 100'000'000;
    s.queue_bytes = 1u << 30;  // nothing dropped: only serialization
    PacketScheduler sch(s, 1, Nanos(0));
    uint64_t bytes = 0;
    Nanos last{0};
    for (int i = 0; i < 20000; ++i) {
        size_t size = 64 + static_cast<size_t>(i * 7919) % 1437;  // 64..1500, not a round number of ns
        Decision d = sch.enqueue(size, Nanos(0));
        ASSERT_EQ(d.fate, Fate::forward);
        ASSERT_GE(d.release, last);
        last = d.release;
        bytes += size;
    }
    double rate = static_cast<double>(bytes) * 8 / (static_cast<double>(last.count()) / 1e9);
    EXPECT_NEAR(rate, 100e6, 100e6 * 0.01);
    // Exact in integers: the remainder carries, so the last departure is within 1 ns.
    EXPECT_NEAR(static_cast<double>(last.count()), static_cast<double>(bytes) * 8 / 100e6 * 1e9, 1.0);
}

TEST(WanScheduler, RateHoldsUnderOfferedLoadAboveIt) {
    LinkShape s;
    s.rate_bps = 1'000'000'000;  // 1500 B every 12 us
    s.queue_bytes = 64u << 20;
    PacketScheduler sch(s, 1, Nanos(0));
    Nanos first{0}, last{0};
    const int n = 50000;
    for (int i = 0; i < n; ++i) {  // offered every 8 us: 1.5 Gbit/s
        Decision d = sch.enqueue(1500, at_us(8 * i));
        ASSERT_EQ(d.fate, Fate::forward);
        if (i == 0) first = d.release;
        last = d.release;
    }
    double rate = (n - 1) * 1500.0 * 8 / (static_cast<double>((last - first).count()) / 1e9);
    EXPECT_NEAR(rate, 1e9, 1e9 * 0.01);
}

TEST(WanScheduler, DelayIsExact) {
    LinkShape s;
    s.delay = 25ms;
    PacketScheduler sch(s, 1, Nanos(0));
    for (int64_t t : {0, 1, 999, 123456789}) {
        Decision d = sch.enqueue(1500, Nanos(t));
        EXPECT_EQ(d.fate, Fate::forward);
        EXPECT_EQ(d.release, Nanos(t) + 25ms);
    }
    // With a rate, the delay comes after serialization: 1500 B at 1 Gbit/s is 12 us.
    s.rate_bps = 1'000'000'000;
    PacketScheduler shaped(s, 1, Nanos(0));
    EXPECT_EQ(shaped.enqueue(1500, 5ms).release, 5ms + 12us + 25ms);
    EXPECT_EQ(shaped.enqueue(1500, 5ms).release, 5ms + 24us + 25ms);    // behind the first
    EXPECT_EQ(shaped.enqueue(1500, 10ms).release, 10ms + 12us + 25ms);  // idle again
}

TEST(WanScheduler, DropTailWhenTheQueueIsOverItsBound) {
    LinkShape s;
    s.rate_bps = 8'000'000;  // one byte per microsecond
    s.queue_bytes = 10000;
    PacketScheduler sch(s, 1, Nanos(0));
    int accepted = 0;
    for (int i = 0; i < 15; ++i)
        if (sch.enqueue(1000, Nanos(0)).fate == Fate::forward) ++accepted;
    EXPECT_EQ(accepted, 10);  // 10 x 1000 B fill the bound exactly
    EXPECT_EQ(sch.backlog(Nanos(0)), 10000u);
    EXPECT_EQ(sch.enqueue(1000, Nanos(0)).fate, Fate::drop_queue);
    // 5 ms later 5000 B have left: room for 5 more, not 6.
    EXPECT_EQ(sch.backlog(5ms), 5000u);
    accepted = 0;
    for (int i = 0; i < 6; ++i)
        if (sch.enqueue(1000, 5ms).fate == Fate::forward) ++accepted;
    EXPECT_EQ(accepted, 5);
    // A small packet still fits where a large one does not.
    EXPECT_EQ(sch.enqueue(1000, 5ms + 500us).fate, Fate::drop_queue);
    EXPECT_EQ(sch.enqueue(400, 5ms + 500us).fate, Fate::forward);
}

TEST(WanScheduler, QueueBoundDefaultsToTheBdpAndTakesTimeOrBytes) {
    LinkShape s;
    s.rate_bps = 1'000'000'000;
    s.delay = 25ms;
    EXPECT_EQ(s.queue_limit(), 6'250'000u);  // 1 Gbit/s x 50 ms RTT
    EXPECT_EQ(s.queue_origin(), "BDP");
    s.delay = 0ms;
    EXPECT_EQ(s.queue_limit(), kMinDefaultQueueBytes);
    EXPECT_EQ(s.queue_origin(), "minimum");
    parse_queue("100ms", "--queue", s);
    EXPECT_EQ(s.queue_limit(), 12'500'000u);
    parse_queue("64K", "--queue", s);
    EXPECT_EQ(s.queue_limit(), 65536u);
    EXPECT_EQ(s.queue_origin(), "given");
}

TEST(WanScheduler, LossFractionIsBinomialAndReproducible) {
    LinkShape s;
    s.loss = 0.02;
    const int n = 100000;
    auto run = [&](uint64_t seed) {
        PacketScheduler sch(s, seed, Nanos(0));
        std::vector<bool> lost;
        for (int i = 0; i < n; ++i) lost.push_back(sch.enqueue(1000, at_us(i)).fate == Fate::drop_loss);
        return lost;
    };
    auto a = run(7);
    double dropped = static_cast<double>(std::count(a.begin(), a.end(), true));
    Range r = binomial(n, 0.02);
    EXPECT_GT(dropped, r.lo);
    EXPECT_LT(dropped, r.hi);
    EXPECT_EQ(run(7), a);  // same seed, same packets lost
    EXPECT_NE(run(8), a);
}

// Mean length of the runs of consecutive losses, and the overall loss share.
struct Runs {
    double mean_run = 0, loss = 0;
    int long_runs = 0;  // runs of 5 or more
};
Runs loss_runs(const LinkShape& s, int n) {
    PacketScheduler sch(s, 3, Nanos(0));
    int lost = 0, runs = 0, current = 0;
    Runs out;
    for (int i = 0; i <= n; ++i) {
        bool l = i < n && sch.enqueue(1000, at_us(i)).fate == Fate::drop_loss;
        if (l) {
            ++lost;
            ++current;
        } else if (current) {
            ++runs;
            if (current >= 5) ++out.long_runs;
            current = 0;
        }
    }
    out.mean_run = runs ? static_cast<double>(lost) / runs : 0;
    out.loss = static_cast<double>(lost) / n;
    return out;
}

TEST(WanScheduler, GilbertElliottLosesInBursts) {
    LinkShape ge;
    ge.burst = {0.01, 0.25, 1.0};  // bursts of 1/0.25 = 4 packets on average, 0.01/0.26 of the time
    Runs b = loss_runs(ge, 200000);
    EXPECT_NEAR(b.mean_run, 4.0, 0.4);
    EXPECT_NEAR(b.loss, 0.01 / 0.26, 0.004);
    EXPECT_GT(b.long_runs, 300);

    LinkShape bernoulli;  // the same loss share, independently
    bernoulli.loss = 0.01 / 0.26;
    Runs i = loss_runs(bernoulli, 200000);
    EXPECT_NEAR(i.loss, b.loss, 0.004);
    EXPECT_LT(i.mean_run, 1.1);
    EXPECT_LT(i.long_runs, 5);
}

TEST(WanScheduler, GilbertElliottLossInBadStateBelowOne) {
    LinkShape ge;
    ge.burst = {0.02, 0.10, 0.5};  // bad 1/6 of the time, half of it lost: 1/12
    Runs b = loss_runs(ge, 200000);
    EXPECT_NEAR(b.loss, 0.02 / 0.12 * 0.5, 0.006);
}

TEST(WanScheduler, ReorderingHappensAtTheSetProbability) {
    LinkShape s;
    s.delay = 10ms;
    s.reorder = {0.05, 5ms};
    PacketScheduler sch(s, 11, Nanos(0));
    const int n = 40000;
    std::vector<Nanos> release;
    int marked = 0;
    for (int i = 0; i < n; ++i) {  // one packet every 100 us: a 5 ms gap lets ~50 overtake
        Decision d = sch.enqueue(1500, at_us(100 * i));
        ASSERT_EQ(d.fate, Fate::forward);
        marked += d.reordered;
        release.push_back(d.release);
    }
    Range r = binomial(n, 0.05);
    EXPECT_GT(marked, r.lo);
    EXPECT_LT(marked, r.hi);
    // A delayed packet is overtaken by its successor unless that one is delayed too.
    int overtaken = 0;
    for (int i = 0; i + 1 < n; ++i) overtaken += release[i] > release[i + 1];
    Range o = binomial(n - 1, 0.05 * 0.95);
    EXPECT_GT(overtaken, o.lo);
    EXPECT_LT(overtaken, o.hi);
}

TEST(WanScheduler, NegativeReorderGapOvertakesAndNeverGoesBelowZero) {
    LinkShape s;
    s.delay = 2ms;
    s.reorder = {1.0, -5ms};  // every packet: 2 - 5 ms, clamped to 0
    PacketScheduler sch(s, 1, Nanos(0));
    EXPECT_EQ(sch.enqueue(100, 1ms).release, 1ms);
    s.reorder = {0.5, -1ms};
    PacketScheduler half(s, 1, Nanos(0));
    int earlier = 0;
    Nanos prev{0};
    for (int i = 0; i < 1000; ++i) {  // every 100 us: a packet 1 ms early passes ~10
        Decision d = half.enqueue(100, at_us(100 * i));
        if (i && d.release < prev) ++earlier;
        prev = d.release;
    }
    EXPECT_GT(earlier, 150);
}

TEST(WanScheduler, OutageDropsEverythingInItsWindowAndNothingOutside) {
    LinkShape s;
    s.delay = 10ms;
    s.outages = parse_outages("1+0.5", "--outage");
    const Nanos start = 7s;  // the path's time zero is not the clock's
    PacketScheduler sch(s, 1, start);
    int before = 0, in = 0, after = 0, wire = 0;
    for (int ms = 0; ms < 3000; ++ms) {
        Nanos t = start + std::chrono::milliseconds(ms);
        Fate f = sch.enqueue(1500, t).fate;
        if (ms < 990)
            before += f == Fate::forward;  // delivered before the cut
        else if (ms < 1000)
            wire += f == Fate::drop_outage;  // on the wire at the cut
        else if (ms < 1500)
            in += f == Fate::drop_outage;  // arrived while down
        else
            after += f == Fate::forward;
    }
    EXPECT_EQ(before, 990);
    EXPECT_EQ(wire, 10);
    EXPECT_EQ(in, 500);
    EXPECT_EQ(after, 1500);
}

// rmig-wan --outage-clock signal: nothing is down until the clock starts,
// then the outages count from that moment, resets included.
TEST(WanScheduler, AnOutageClockStartedLaterMovesTheOutages) {
    LinkShape s;
    s.outages = parse_outages("1+0.5:reset", "--outage");
    std::atomic<int64_t> clock{PacketScheduler::kNotStarted};
    PacketScheduler sch(s, 1, Nanos(0), &clock);
    for (int ms = 0; ms < 5000; ms += 10) EXPECT_FALSE(sch.down(std::chrono::milliseconds(ms))) << ms;
    EXPECT_EQ(sch.resets_ended(10s), 0u);
    clock = Nanos(20s).count();
    EXPECT_FALSE(sch.down(20s + 999ms));
    EXPECT_TRUE(sch.down(20s + 1s));
    EXPECT_TRUE(sch.down(20s + 1499ms));
    EXPECT_FALSE(sch.down(20s + 1500ms));
    EXPECT_EQ(sch.enqueue(1500, 20s + 1200ms).fate, Fate::drop_outage);
    EXPECT_EQ(sch.resets_ended(20s + 1400ms), 0u);
    EXPECT_EQ(sch.resets_ended(20s + 1600ms), 1u);
}

TEST(WanScheduler, RepeatingOutagesAndQueuedPacketsThatOutliveOne) {
    LinkShape s;
    s.outages = parse_outages("1+0.2/2", "--outage");  // down 1-1.2, 3-3.2, 5-5.2, ...
    PacketScheduler sch(s, 1, Nanos(0));
    for (double t : {0.5, 1.25, 2.9, 3.25, 4.5, 5.25, 101.5}) EXPECT_EQ(sch.down(Nanos(int64_t(t * 1e9))), false) << t;
    for (double t : {1.0, 1.1, 3.0, 5.15, 101.0}) EXPECT_EQ(sch.down(Nanos(int64_t(t * 1e9))), true) << t;

    // A packet still queued at the bottleneck when the path goes down leaves
    // after it is back up, and is delivered.
    LinkShape q;
    q.rate_bps = 8'000'000;  // 1 byte/us: 10000 B take 10 ms
    q.queue_bytes = 1u << 20;
    q.outages = parse_outages("10ms+2ms", "--outage");
    PacketScheduler queued(q, 1, Nanos(0));
    EXPECT_EQ(queued.enqueue(10000, 5ms).fate, Fate::drop_outage);  // serialized 5-15 ms: through the cut
    EXPECT_EQ(queued.enqueue(1000, 9ms).fate, Fate::forward);       // leaves at 16 ms
}

TEST(WanShape, ParsesWhatTheCommandLineTakes) {
    EXPECT_EQ(parse_duration("25ms", "d"), 25ms);
    EXPECT_EQ(parse_duration("1.5s", "d"), 1500ms);
    EXPECT_EQ(parse_duration("250us", "d"), 250us);
    EXPECT_EQ(parse_duration("0", "d"), Nanos(0));
    EXPECT_THROW(parse_duration("25", "d"), rmig::UsageError);  // a delay needs its unit
    EXPECT_EQ(parse_duration("10", "d", std::chrono::seconds(1)), 10s);
    EXPECT_EQ(parse_signed_duration("-5ms", "g"), -5ms);
    EXPECT_EQ(parse_rate("1gbit", "r"), 1'000'000'000u);
    EXPECT_EQ(parse_rate("500mbit", "r"), 500'000'000u);
    EXPECT_EQ(parse_rate("2.5Gbit", "r"), 2'500'000'000u);
    EXPECT_EQ(parse_rate("0", "r"), 0u);
    EXPECT_EQ(parse_rate("unlimited", "r"), 0u);
    EXPECT_THROW(parse_rate("100mbps", "r"), rmig::UsageError);
    EXPECT_THROW(parse_rate("fast", "r"), rmig::UsageError);
    EXPECT_DOUBLE_EQ(parse_percent("0.1%", "l"), 0.001);
    EXPECT_DOUBLE_EQ(parse_percent("2", "l"), 0.02);
    EXPECT_THROW(parse_percent("101", "l"), rmig::UsageError);
    EXPECT_THROW(parse_percent("-1", "l"), rmig::UsageError);
    GilbertElliott g = parse_burst_loss("1%:20%", "b");
    EXPECT_DOUBLE_EQ(g.p_good_to_bad, 0.01);
    EXPECT_DOUBLE_EQ(g.p_bad_to_good, 0.2);
    EXPECT_DOUBLE_EQ(g.loss_in_bad, 1.0);
    EXPECT_THROW(parse_burst_loss("1:0", "b"), rmig::UsageError);  // the first burst would never end
    Reorder r = parse_reorder("1%:-2ms", "o");
    EXPECT_DOUBLE_EQ(r.probability, 0.01);
    EXPECT_EQ(r.gap, -2ms);
    auto o = parse_outages("10+2,1.5s+500ms/30", "o");
    ASSERT_EQ(o.size(), 2u);
    EXPECT_EQ(o[0].at, 10s);
    EXPECT_EQ(o[0].length, 2s);
    EXPECT_EQ(o[1].at, 1500ms);
    EXPECT_EQ(o[1].every, 30s);
    EXPECT_THROW(parse_outages("10", "o"), rmig::UsageError);
    EXPECT_THROW(parse_outages("10+2/1", "o"), rmig::UsageError);  // period shorter than the outage

    PathSpec p = parse_path_spec("delay=40ms,rate=500mbit,loss=1,outage=5+1,outage=9+1,subnet=10.9.0.0/24", "--path2");
    EXPECT_EQ(p.shape.delay, 40ms);
    EXPECT_EQ(p.shape.rate_bps, 500'000'000u);
    EXPECT_DOUBLE_EQ(p.shape.loss, 0.01);
    EXPECT_EQ(p.shape.outages.size(), 2u);
    EXPECT_EQ(p.subnet, "10.9.0.0/24");
    try {
        parse_path_spec("delay=40ms,latency=3ms", "--path2");
        FAIL() << "an unknown key was accepted";
    } catch (const rmig::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("--path2: unknown setting 'latency'"), std::string::npos) << e.what();
    }
    try {
        parse_path_spec("rate=9", "--path2");
        FAIL() << "a rate of 9 bit/s was accepted";
    } catch (const rmig::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("--path2 rate"), std::string::npos) << e.what();
    }
}

TEST(WanShape, FormatsInTheUnitsItParses) {
    EXPECT_EQ(format_duration(25ms), "25ms");
    EXPECT_EQ(format_duration(1500ms), "1.5s");
    EXPECT_EQ(format_duration(-2ms), "-2ms");
    EXPECT_EQ(format_rate_bits(1'000'000'000), "1gbit");
    EXPECT_EQ(format_rate_bits(500'000'000), "500mbit");
    EXPECT_EQ(format_rate_bits(0), "unlimited");
    LinkShape s;
    s.delay = 25ms;
    s.rate_bps = 1'000'000'000;
    EXPECT_EQ(s.describe(), "delay 25ms, rate 1gbit, queue 6250000 B (BDP)");
}
