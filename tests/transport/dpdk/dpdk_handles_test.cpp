// The owning DPDK handles (transport/dpdk/dpdk_handles.hpp) on a real EAL: a
// net_ring port built on rings this test owns, so it can see exactly which
// frames the "device" took (they sit in its tx ring) and count every mbuf of
// a private pool back home.
#include <gtest/gtest.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <atomic>
#include <string>
#include <vector>

#include "transport/dpdk/dpdk_handles.hpp"
#include "transport/dpdk/eal.hpp"

namespace rmig::transport::dpdk {
namespace {

std::atomic<int> g_serial{0};
std::string unique(const char* what) { return what + std::to_string(g_serial++); }

void ensure_eal() { Eal::instance("--no-huge -m 1024 --no-shconf --no-pci", true, ""); }

struct RingDeleter {
    void operator()(rte_ring* r) const noexcept { rte_ring_free(r); }
};
using Ring = std::unique_ptr<rte_ring, RingDeleter>;

Ring make_ring(unsigned capacity) {
    Ring r(rte_ring_create(unique("rmig_test_r").c_str(), capacity, SOCKET_ID_ANY,
                           RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ));
    EXPECT_TRUE(r) << rte_strerror(rte_errno);
    return r;
}

// A started net_ring port whose tx queue is a ring of `tx_capacity` frames:
// a tx_burst takes at most that many until the test drains it.
class RingPort {
public:
    explicit RingPort(unsigned tx_capacity, rte_mempool* pool)
        : rx_(make_ring(64)), tx_(make_ring(tx_capacity)) {
        // The vdev is "net_ring_" + name, at most 28 characters.
        std::string name = unique("rmig");
        rte_ring* rx = rx_.get();
        rte_ring* tx = tx_.get();
        int port = rte_eth_from_rings(name.c_str(), &rx, 1, &tx, 1, SOCKET_ID_ANY);
        EXPECT_GE(port, 0) << rte_strerror(rte_errno);
        id_ = static_cast<uint16_t>(port);
        device_ = ProbedDevice("vdev", "net_ring_" + name);
        rte_eth_conf conf{};
        EXPECT_EQ(rte_eth_dev_configure(id_, 1, 1, &conf), 0);
        configured_ = ConfiguredPort(id_);
        EXPECT_EQ(rte_eth_rx_queue_setup(id_, 0, 64, SOCKET_ID_ANY, nullptr, pool), 0);
        EXPECT_EQ(rte_eth_tx_queue_setup(id_, 0, 64, SOCKET_ID_ANY, nullptr), 0);
        EXPECT_EQ(rte_eth_dev_start(id_), 0);
        started_ = StartedPort(id_);
    }

    uint16_t id() const { return id_; }
    rte_ring* rx_ring() const { return rx_.get(); }

    // What the device "sent": the frames in its tx ring, in order; the caller
    // now holds their references (as the device did).
    std::vector<Mbuf> drain_sent() {
        std::vector<Mbuf> out;
        void* m = nullptr;
        while (rte_ring_dequeue(tx_.get(), &m) == 0) out.emplace_back(static_cast<rte_mbuf*>(m));
        return out;
    }

    void stop() { started_.reset(); }
    void close() { configured_.reset(); }

private:
    Ring rx_, tx_;
    uint16_t id_ = 0;
    // As in transport/dpdk/port.hpp: released stop, close, remove.
    ProbedDevice device_;
    ConfiguredPort configured_;
    StartedPort started_;
};

class DpdkHandles : public ::testing::Test {
protected:
    void SetUp() override {
        ensure_eal();
        // No per-lcore cache: every free is visible in the pool's counts at once.
        pool_.reset(rte_pktmbuf_pool_create(unique("rmig_test_p").c_str(), 255, 0, 0,
                                            RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY));
        ASSERT_TRUE(pool_) << rte_strerror(rte_errno);
    }
    void TearDown() override {
        if (pool_) {
            EXPECT_EQ(in_use(), 0u) << "mbufs leaked";
        }
    }

    unsigned in_use() const { return rte_mempool_in_use_count(pool_.get()); }

    // A frame whose first data byte is `tag`, so the test can tell frames apart.
    Mbuf frame(uint8_t tag) {
        Mbuf m = Mbuf::alloc(pool_.get());
        EXPECT_TRUE(m);
        char* p = rte_pktmbuf_append(m.get(), 64);
        EXPECT_NE(p, nullptr);
        p[0] = static_cast<char>(tag);
        return m;
    }
    static uint8_t tag_of(const Mbuf& m) { return *rte_pktmbuf_mtod(m.get(), const uint8_t*); }

    Mempool pool_;
};

TEST_F(DpdkHandles, MbufFreesItsReferenceAndReleaseHandsItOver) {
    {
        Mbuf m = frame(1);
        EXPECT_EQ(in_use(), 1u);
        Mbuf moved = std::move(m);
        EXPECT_FALSE(m);  // moving hands the reference over
        EXPECT_EQ(in_use(), 1u);
    }
    EXPECT_EQ(in_use(), 0u);
    Mbuf m = frame(2);
    rte_mbuf* raw = m.release();
    EXPECT_FALSE(m);
    EXPECT_EQ(in_use(), 1u);  // nobody freed it: the raw pointer's holder owns it
    Mbuf again(raw);
}

TEST_F(DpdkHandles, PartialTxBurstLeavesExactlyTheUnsentFramesOwnedInOrder) {
    RingPort port(8, pool_.get());
    TxBatch batch;
    for (uint8_t i = 0; i < 12; ++i) batch.push(frame(i));
    EXPECT_EQ(in_use(), 12u);

    EXPECT_EQ(batch.transmit(port.id(), 0, 4), 8u);  // the ring is full after 8, however often we try
    EXPECT_EQ(batch.size(), 4u);
    auto sent = port.drain_sent();
    ASSERT_EQ(sent.size(), 8u);
    for (uint8_t i = 0; i < 8; ++i) EXPECT_EQ(tag_of(sent[i]), i);
    sent.clear();  // the device's references: it frees what it sent
    EXPECT_EQ(in_use(), 4u) << "the batch still owns the 4 frames the device did not take";

    // The rest goes, in order, once the ring has room again.
    EXPECT_EQ(batch.transmit(port.id(), 0, 1), 4u);
    EXPECT_TRUE(batch.empty());
    sent = port.drain_sent();
    ASSERT_EQ(sent.size(), 4u);
    for (uint8_t i = 0; i < 4; ++i) EXPECT_EQ(tag_of(sent[i]), 8 + i);
}

TEST_F(DpdkHandles, FramesTheDeviceNeverTookAreFreedWithTheBatch) {
    RingPort port(4, pool_.get());
    {
        TxBatch batch;
        for (uint8_t i = 0; i < 6; ++i) batch.push(frame(i));
        EXPECT_EQ(batch.transmit(port.id(), 0, 2), 4u);
        EXPECT_EQ(in_use(), 6u);
    }
    EXPECT_EQ(in_use(), 4u) << "only the device's 4 remain";
    port.drain_sent();
}

TEST_F(DpdkHandles, TruncateFreesOnlyTheFramesBeyondThoseKept) {
    TxBatch batch;
    std::vector<rte_mbuf*> raw;
    for (uint8_t i = 0; i < 5; ++i) {
        Mbuf m = frame(i);
        raw.push_back(m.get());
        batch.push(std::move(m));
    }
    batch.truncate(2);
    EXPECT_EQ(batch.size(), 2u);
    EXPECT_EQ(in_use(), 2u);
    EXPECT_TRUE(batch.contains(raw[0]));
    EXPECT_TRUE(batch.contains(raw[1]));
    EXPECT_FALSE(batch.contains(raw[2]));
}

// The retransmission pattern of Connection: the sender keeps its reference
// while the device gets one of its own through a partial tx_burst.
TEST_F(DpdkHandles, SharedReferenceOutlivesTheDevicesCopy) {
    RingPort port(1, pool_.get());
    Mbuf kept_a = frame(7), kept_b = frame(8);
    TxBatch batch;
    batch.push(kept_a.share());
    batch.push(kept_b.share());
    EXPECT_TRUE(kept_a.shared());
    EXPECT_EQ(batch.transmit(port.id(), 0, 1), 1u);  // room for one
    EXPECT_TRUE(batch.contains(kept_b.get()));
    EXPECT_FALSE(batch.contains(kept_a.get()));
    port.drain_sent().clear();  // the device is done with frame 7
    EXPECT_FALSE(kept_a.shared());
    EXPECT_EQ(tag_of(kept_a), 7);  // still ours, intact, for a retransmission
    batch.truncate(0);             // frame 8's unsent copy dropped
    EXPECT_FALSE(kept_b.shared());
    EXPECT_EQ(in_use(), 2u);
}

TEST_F(DpdkHandles, ChainedTailIsOwnedByItsHead) {
    Mbuf head = frame(1);
    Mbuf tail = frame(2);
    ASSERT_TRUE(head.chain(std::move(tail)));
    EXPECT_EQ(head->nb_segs, 2);
    EXPECT_EQ(in_use(), 2u);
    head.reset();
    EXPECT_EQ(in_use(), 0u);
}

TEST_F(DpdkHandles, RxBurstHandsOutOwnedFrames) {
    RingPort port(8, pool_.get());
    for (uint8_t i = 0; i < 3; ++i) {
        Mbuf m = frame(i);
        ASSERT_EQ(rte_ring_enqueue(port.rx_ring(), m.get()), 0);
        (void)m.release();  // the ring holds it now
    }
    Mbuf rx[8];
    ASSERT_EQ(rx_burst(port.id(), 0, rx), 3);
    for (uint8_t i = 0; i < 3; ++i) EXPECT_EQ(tag_of(rx[i]), i);
    EXPECT_FALSE(rx[3]);
    for (auto& m : rx) m.reset();
    EXPECT_EQ(in_use(), 0u);
}

TEST_F(DpdkHandles, PortStagesAreUndoneStopThenClose) {
    RingPort port(8, pool_.get());
    rte_eth_conf conf{};
    EXPECT_EQ(rte_eth_dev_configure(port.id(), 1, 1, &conf), -EBUSY) << "started";
    port.stop();
    EXPECT_EQ(rte_eth_dev_configure(port.id(), 1, 1, &conf), 0) << "stopped";
    EXPECT_TRUE(rte_eth_dev_is_valid_port(port.id()));
    port.close();
    EXPECT_FALSE(rte_eth_dev_is_valid_port(port.id())) << "closed: the port id is released";
}

TEST_F(DpdkHandles, ProbedDeviceIsRemovedAgain) {
    std::string name = unique("net_null_rmig");
    ASSERT_EQ(rte_dev_probe(name.c_str()), 0);
    uint16_t port = 0;
    ASSERT_EQ(rte_eth_dev_get_port_by_name(name.c_str(), &port), 0);
    {
        ProbedDevice dev("vdev", name);
        ProbedDevice moved = std::move(dev);
        dev.reset();  // moved from: owns nothing, removes nothing
        EXPECT_EQ(rte_eth_dev_get_port_by_name(name.c_str(), &port), 0);
    }
    EXPECT_NE(rte_eth_dev_get_port_by_name(name.c_str(), &port), 0);
}

TEST_F(DpdkHandles, MempoolHandleFreesThePool) {
    std::string name = unique("rmig_test_p");
    Mempool p(rte_pktmbuf_pool_create(name.c_str(), 63, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                      SOCKET_ID_ANY));
    ASSERT_TRUE(p);
    EXPECT_EQ(rte_mempool_lookup(name.c_str()), p.get());
    p.reset();
    EXPECT_EQ(rte_mempool_lookup(name.c_str()), nullptr);
}

}  // namespace
}  // namespace rmig::transport::dpdk
