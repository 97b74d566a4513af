// The dpdk transport's reliable delivery (sender + receiver + pacing) over a
// simulated link that loses, reorders and delays segments and acks: every byte
// must arrive once, in order, and losses must be repaired by retransmission.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "transport/dpdk/protocol/pacer.hpp"
#include "transport/dpdk/protocol/reliable_receiver.hpp"
#include "transport/dpdk/protocol/reliable_sender.hpp"
#include "transport/dpdk/protocol/segment_header.hpp"
#include "transport/dpdk/protocol/write_record.hpp"

namespace proto = rmig::transport::dpdk::proto;
using Bytes = std::vector<std::byte>;

namespace {

struct LinkConfig {
    double loss = 0;          // per frame, both directions
    uint64_t delay_ns = 50'000;
    uint64_t jitter_ns = 0;   // uniform extra delay: reorders frames
};

// Frames in flight, delivered at their arrival time.
template <class T>
class SimLink {
public:
    SimLink(const LinkConfig& c, uint32_t seed) : cfg_(c), rng_(seed) {}
    bool send(T frame, uint64_t now) {
        if (std::uniform_real_distribution<double>(0, 1)(rng_) < cfg_.loss) return false;
        uint64_t extra = cfg_.jitter_ns ? rng_() % cfg_.jitter_ns : 0;
        q_.emplace(now + cfg_.delay_ns + extra + (seq_++ % 7), std::move(frame));
        return true;
    }
    template <class F>
    void deliver(uint64_t now, F&& f) {
        while (!q_.empty() && q_.begin()->first <= now) {
            auto node = q_.extract(q_.begin());
            f(std::move(node.mapped()));
        }
    }
    bool empty() const { return q_.empty(); }

private:
    LinkConfig cfg_;
    std::mt19937 rng_;
    std::multimap<uint64_t, T> q_;
    uint64_t seq_ = 0;
};

struct DataFrame {
    uint64_t seq;
    uint64_t stamp;
    Bytes payload;
};
struct AckFrame {
    uint64_t cum, limit, echo;
    Bytes sack;
};

struct Result {
    Bytes received;
    proto::SenderStats stats;
    uint64_t end_ns = 0;
};

Bytes pattern(size_t n, uint32_t seed) {
    Bytes b(n);
    std::mt19937 r(seed);
    for (auto& x : b) x = static_cast<std::byte>(r());
    return b;
}

// Sends `data` in `mss`-byte segments over the simulated link; the receiver
// reads everything it can each step (backlog 0) unless `slow_reader`.
Result transfer(const Bytes& data, size_t mss, const LinkConfig& link, proto::SenderConfig sc,
                uint32_t recv_capacity, uint32_t seed, uint64_t pace_bytes_per_sec = 0) {
    proto::ReliableSender<Bytes> tx(sc);
    proto::ReliableReceiver<Bytes> rx(recv_capacity);
    proto::Pacer pacer(pace_bytes_per_sec, 4 * mss);
    SimLink<DataFrame> fwd(link, seed);
    SimLink<AckFrame> back(link, seed + 1);
    Result r;
    size_t offset = 0;
    uint64_t now = 1'000;
    const uint64_t step = 10'000;  // 10 us per simulation step
    for (int iter = 0; iter < 5'000'000; ++iter, now += step) {
        // Sender: new segments within window and pacing.
        while (offset < data.size() && tx.can_send() && pacer.take(mss, now)) {
            size_t n = std::min(mss, data.size() - offset);
            Bytes seg(data.begin() + long(offset), data.begin() + long(offset + n));
            offset += n;
            uint64_t seq = tx.push(seg, now);
            fwd.send({seq, now, std::move(seg)}, now);
        }
        tx.collect_retransmits(now, 64, [&](uint64_t seq, Bytes& p) {
            fwd.send({seq, now, p}, now);
            return true;
        });
        // Receiver: take arrivals, ack once per step if anything came.
        bool got = false;
        fwd.deliver(now, [&](DataFrame f) {
            got = true;
            rx.on_data(f.seq, std::move(f.payload), f.stamp, 0, [&](Bytes&& b) {
                r.received.insert(r.received.end(), b.begin(), b.end());
            });
        });
        if (got) {
            AckFrame a{rx.next_expected(), rx.limit(0), rx.newest_stamp(), {}};
            rx.sack(a.sack, 512);
            back.send(std::move(a), now);
        }
        back.deliver(now, [&](AckFrame a) {
            tx.on_ack({a.cum, a.limit, a.echo, a.sack}, now, [](Bytes&&) {});
        });
        if (offset == data.size() && tx.idle()) {
            r.end_ns = now;
            break;
        }
    }
    r.stats = tx.stats();
    return r;
}

proto::SenderConfig config(uint32_t window) {
    proto::SenderConfig c;
    c.window_segments = window;
    c.initial_rto_ns = 2'000'000;
    c.min_rto_ns = 500'000;
    return c;
}

}  // namespace

TEST(SegmentHeader, RoundTripsAndRejectsForeignFrames) {
    proto::SegmentHeader h{proto::SegmentType::ack, proto::kFromAcceptor, 0xdeadbeef, 3,
                           0x0102030405060708ull, 99, 12345, 7};
    std::array<std::byte, proto::kSegmentHeaderSize + 3> buf{};
    proto::encode(h, std::span<std::byte, proto::kSegmentHeaderSize>(buf.data(), proto::kSegmentHeaderSize));
    auto d = proto::decode(buf);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->type, h.type);
    EXPECT_EQ(d->flags, h.flags);
    EXPECT_EQ(d->conn_id, h.conn_id);
    EXPECT_EQ(d->seq, h.seq);
    EXPECT_EQ(d->window_limit, 99u);
    EXPECT_EQ(d->timestamp, 12345u);
    EXPECT_EQ(d->queue, 7u);
    // Length beyond the frame, wrong magic, truncated header: not ours.
    EXPECT_FALSE(proto::decode(std::span(buf).first(proto::kSegmentHeaderSize + 2)));
    buf[0] = std::byte{0};
    EXPECT_FALSE(proto::decode(buf));
    EXPECT_FALSE(proto::decode(std::span(buf).first(10)));
}

TEST(WriteRecord, RoundTripsAndRejectsDamage) {
    proto::WriteRecord r{3, 0x123456789abcull, 8192};
    auto b = proto::encode(r);
    EXPECT_TRUE(proto::is_write_record(b));
    auto d = proto::decode_write_record(b);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->rkey, 3u);
    EXPECT_EQ(d->offset, 0x123456789abcull);
    EXPECT_EQ(d->length, 8192u);
    // A wire frame ("RMF1") is not a write record; a flipped offset bit fails the check.
    std::array<std::byte, 4> rmf1{std::byte{0x52}, std::byte{0x4d}, std::byte{0x46}, std::byte{0x31}};
    EXPECT_FALSE(proto::is_write_record(rmf1));
    b[12] ^= std::byte{0x10};
    EXPECT_FALSE(proto::decode_write_record(b));
}

TEST(ReliableReceiver, ReordersDropsDuplicatesAndRespectsWindow) {
    proto::ReliableReceiver<int> rx(4);
    std::vector<int> out;
    auto deliver = [&](int&& v) { out.push_back(v); };
    EXPECT_EQ(rx.on_data(2, 2, 0, 0, deliver), proto::Arrival::stored);
    EXPECT_EQ(rx.on_data(4, 4, 0, 0, deliver), proto::Arrival::beyond_window);
    EXPECT_EQ(rx.on_data(1, 1, 0, 0, deliver), proto::Arrival::stored);
    EXPECT_TRUE(rx.has_gap());
    std::vector<std::byte> sack;
    rx.sack(sack, 8);
    ASSERT_EQ(sack.size(), 1u);
    EXPECT_EQ(static_cast<int>(sack[0]), 0b11);  // segments 1 and 2
    EXPECT_EQ(rx.on_data(0, 0, 0, 0, deliver), proto::Arrival::delivered);
    EXPECT_EQ(out, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(rx.on_data(1, 1, 0, 0, deliver), proto::Arrival::duplicate);
    EXPECT_EQ(rx.next_expected(), 3u);
    // Two unread segments leave room for two more.
    EXPECT_EQ(rx.limit(2), 5u);
    EXPECT_EQ(rx.on_data(5, 5, 0, 2, deliver), proto::Arrival::beyond_window);
}

TEST(ReliableSender, CumulativeAckReleasesInOrderAndSackTriggersFastRetransmit) {
    auto cfg = config(16);
    cfg.initial_rto_ns = 1'000'000'000;  // no timeouts in this test
    proto::ReliableSender<int> tx(cfg);
    for (int i = 0; i < 8; ++i) tx.push(i, 1000);
    std::vector<int> released;
    // Segment 0 lost; 1..5 SACKed (bits 0..4 relative to cumulative+1 = 1).
    std::byte bits[1] = {std::byte{0b11111}};
    tx.on_ack({0, 100, 1000 + 50'000, bits}, 1000 + 50'000, [&](int&& v) { released.push_back(v); });
    EXPECT_TRUE(released.empty());
    std::vector<uint64_t> again;
    tx.collect_retransmits(1000 + 10'000'000, 16, [&](uint64_t s, int&) {
        again.push_back(s);
        return true;
    });
    EXPECT_EQ(again, (std::vector<uint64_t>{0}));  // only the hole; 6, 7 are not late yet
    EXPECT_EQ(tx.stats().fast_retransmits, 1u);
    tx.on_ack({8, 100, 0, {}}, 20'000'000, [&](int&& v) { released.push_back(v); });
    EXPECT_EQ(released, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
    EXPECT_TRUE(tx.idle());
}

TEST(ReliableSender, WindowAndReceiverLimitBoundInFlight) {
    proto::ReliableSender<int> tx(config(4));
    for (int i = 0; i < 4; ++i) tx.push(i, 1);
    EXPECT_FALSE(tx.can_send());
    tx.on_ack({2, 3, 0, {}}, 2, [](int&&) {});  // receiver takes only below 3... but 4 already sent
    EXPECT_FALSE(tx.can_send());
    tx.on_ack({4, 10, 0, {}}, 3, [](int&&) {});
    EXPECT_TRUE(tx.can_send());
}

TEST(ReliableSender, TimeoutRetransmitsAndBacksOff) {
    proto::ReliableSender<int> tx(config(4));
    tx.push(7, 0);
    uint64_t rto = tx.rto_ns();
    size_t n = tx.collect_retransmits(rto - 1, 8, [](uint64_t, int&) { return true; });
    EXPECT_EQ(n, 0u);
    n = tx.collect_retransmits(rto, 8, [](uint64_t s, int& v) {
        EXPECT_EQ(s, 0u);
        EXPECT_EQ(v, 7);
        return true;
    });
    EXPECT_EQ(n, 1u);
    EXPECT_EQ(tx.rto_ns(), 2 * rto);
    EXPECT_EQ(tx.stats().timeout_retransmits, 1u);
    // A segment the caller could not send yet (still queued) is not counted
    // and waits another full timeout.
    n = tx.collect_retransmits(rto + 2 * rto, 8, [](uint64_t, int&) { return false; });
    EXPECT_EQ(n, 0u);
    EXPECT_EQ(tx.stats().timeout_retransmits, 1u);
    n = tx.collect_retransmits(rto + 2 * rto + 1, 8, [](uint64_t, int&) { return true; });
    EXPECT_EQ(n, 0u);
}

TEST(ReliableDelivery, CleanLinkDeliversExactlyWithoutRetransmits) {
    Bytes data = pattern(4 << 20, 1);
    auto r = transfer(data, 1460, {0, 50'000, 0}, config(256), 256, 11);
    ASSERT_EQ(r.received.size(), data.size());
    EXPECT_TRUE(r.received == data);
    EXPECT_EQ(r.stats.timeout_retransmits + r.stats.fast_retransmits, 0u);
}

class LossyLink : public ::testing::TestWithParam<double> {};

TEST_P(LossyLink, ReorderingLossyLinkDeliversEveryByteInOrder) {
    double loss = GetParam();
    Bytes data = pattern(2 << 20, 2);
    auto r = transfer(data, 1460, {loss, 100'000, 200'000}, config(512), 512, 21);
    ASSERT_EQ(r.received.size(), data.size()) << "loss " << loss;
    EXPECT_TRUE(r.received == data);
    EXPECT_GT(r.stats.fast_retransmits + r.stats.timeout_retransmits, 0u);
    // Gap-driven repair does most of the work; timeouts are the fallback.
    EXPECT_GT(r.stats.fast_retransmits, r.stats.timeout_retransmits) << "loss " << loss;
}

INSTANTIATE_TEST_SUITE_P(Loss, LossyLink, ::testing::Values(0.01, 0.05, 0.2));

TEST(ReliableDelivery, ReceiverSmallerThanSenderWindowStillExact) {
    Bytes data = pattern(1 << 20, 3);
    auto r = transfer(data, 1000, {0.02, 50'000, 50'000}, config(1024), 64, 31);
    ASSERT_EQ(r.received.size(), data.size());
    EXPECT_TRUE(r.received == data);
}

TEST(Pacer, LimitsAverageRate) {
    // 100 MB/s for 10 ms of simulated time: about 1 MB, never much more.
    Bytes data = pattern(8 << 20, 4);
    auto r = transfer(data, 1000, {0, 10'000, 0}, config(4096), 4096, 41, 100'000'000);
    double secs = double(r.end_ns) * 1e-9;
    double rate = double(data.size()) / secs;
    EXPECT_LT(rate, 105e6);
    EXPECT_GT(rate, 80e6);
}

TEST(WindowFromBdp, ScalesWithBandwidthAndRtt) {
    EXPECT_EQ(proto::window_from_bdp(10, 100, 1000), 250u);  // 10 Gb/s * 100 us * 2 / 1000 B
    EXPECT_EQ(proto::window_from_bdp(100, 10'000, 9000, 64, 16384), 16384u);
    EXPECT_EQ(proto::window_from_bdp(1, 1, 9000), 64u);
}
