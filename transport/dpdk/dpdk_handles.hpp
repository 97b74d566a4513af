// Owning handles for DPDK objects, in the manner of rdma/verbs_raii.hpp: each
// resource is released exactly once, by whoever holds its handle, so early
// returns and exceptions need no hand-written cleanup. Moving a handle is
// handing over that ownership; release() hands it to DPDK itself (a PMD's
// tx_burst, a chain's head) and marks the spot in the code where that happens.
#pragma once

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace rmig::transport::dpdk {

// ---- memory ----

struct MempoolDeleter {
    void operator()(rte_mempool* p) const noexcept { rte_mempool_free(p); }
};
using Mempool = std::unique_ptr<rte_mempool, MempoolDeleter>;

// One reference to an mbuf chain (rte_pktmbuf_free on destruction). The chain
// may be referenced elsewhere too (reference counts): see share().
class Mbuf {
public:
    Mbuf() = default;
    explicit Mbuf(rte_mbuf* m) noexcept : m_(m) {}
    Mbuf(Mbuf&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
    Mbuf& operator=(Mbuf&& o) noexcept {
        if (this != &o) reset(std::exchange(o.m_, nullptr));
        return *this;
    }
    Mbuf(const Mbuf&) = delete;
    Mbuf& operator=(const Mbuf&) = delete;
    ~Mbuf() { reset(); }

    // Empty when the pool is exhausted.
    static Mbuf alloc(rte_mempool* pool) noexcept { return Mbuf(rte_pktmbuf_alloc(pool)); }

    rte_mbuf* get() const noexcept { return m_; }
    rte_mbuf* operator->() const noexcept { return m_; }
    explicit operator bool() const noexcept { return m_ != nullptr; }

    // Gives up the reference without freeing it: the caller passes it to DPDK.
    [[nodiscard]] rte_mbuf* release() noexcept { return std::exchange(m_, nullptr); }
    void reset(rte_mbuf* m = nullptr) noexcept {
        if (m_) rte_pktmbuf_free(m_);
        m_ = m;
    }

    // Another reference to the same chain (one more count on every segment,
    // as a PMD frees each segment it transmits): the frame can go to the
    // device while this handle keeps it for retransmission.
    Mbuf share() const noexcept {
        for (rte_mbuf* s = m_; s; s = s->next) rte_mbuf_refcnt_update(s, 1);
        return Mbuf(m_);
    }
    // True while someone else (the device) also refers to this chain's head.
    bool shared() const noexcept { return m_ && rte_mbuf_refcnt_read(m_) > 1; }

    // Appends `tail`'s segments to this chain, which then owns them; false
    // (and `tail` freed) when the chain would have too many segments.
    [[nodiscard]] bool chain(Mbuf tail) noexcept {
        if (rte_pktmbuf_chain(m_, tail.get()) != 0) return false;
        (void)tail.release();
        return true;
    }

private:
    rte_mbuf* m_ = nullptr;
};

// Frames waiting for one tx queue, each holding one reference. transmit()
// hands the references of the frames the device took to the device; the
// others (its ring was full) stay here, in order, for the next try, and are
// freed with the batch.
class TxBatch {
public:
    TxBatch() = default;
    TxBatch(const TxBatch&) = delete;
    TxBatch& operator=(const TxBatch&) = delete;
    ~TxBatch() { truncate(0); }

    void reserve(size_t n) { frames_.reserve(n); }
    void push(Mbuf m) { frames_.push_back(m.release()); }
    size_t size() const { return frames_.size(); }
    bool empty() const { return frames_.empty(); }
    bool contains(const rte_mbuf* m) const {
        return std::find(frames_.begin(), frames_.end(), m) != frames_.end();
    }

    // Offers the frames to (port, queue) in order, up to `tries` bursts;
    // returns how many the device took.
    size_t transmit(uint16_t port, uint16_t queue, int tries) {
        size_t sent = 0;
        for (int t = 0; sent < frames_.size() && t < tries; ++t)
            sent += rte_eth_tx_burst(port, queue, frames_.data() + sent,
                                     static_cast<uint16_t>(frames_.size() - sent));
        frames_.erase(frames_.begin(), frames_.begin() + static_cast<long>(sent));
        return sent;
    }

    // Frees every frame after the first `keep`.
    void truncate(size_t keep) {
        for (size_t i = keep; i < frames_.size(); ++i) rte_pktmbuf_free(frames_[i]);
        if (keep < frames_.size()) frames_.resize(keep);
    }

private:
    // Raw, because tx_burst takes an array of them; each is owned by the batch.
    std::vector<rte_mbuf*> frames_;
};

// rte_eth_rx_burst into owned handles: out[0..n) each hold one received frame.
inline uint16_t rx_burst(uint16_t port, uint16_t queue, std::span<Mbuf> out) {
    constexpr size_t kMax = 64;
    rte_mbuf* raw[kMax];
    uint16_t n = rte_eth_rx_burst(port, queue, raw, static_cast<uint16_t>(std::min(out.size(), kMax)));
    for (uint16_t i = 0; i < n; ++i) out[i] = Mbuf(raw[i]);
    return n;
}

// ---- the port: each stage of its life undone by its own handle ----

// A device this process created with rte_dev_probe: removed again
// (rte_eal_hotplug_remove) on destruction. Devices the EAL created from its
// own arguments are not ours to remove and get no handle.
class ProbedDevice {
public:
    ProbedDevice() = default;
    ProbedDevice(std::string bus, std::string name) : bus_(std::move(bus)), name_(std::move(name)) {}
    ProbedDevice(ProbedDevice&& o) noexcept
        : bus_(std::move(o.bus_)), name_(std::exchange(o.name_, {})) {}
    ProbedDevice& operator=(ProbedDevice&& o) noexcept {
        if (this != &o) {
            reset();
            bus_ = std::move(o.bus_);
            name_ = std::exchange(o.name_, {});
        }
        return *this;
    }
    ~ProbedDevice() { reset(); }

    explicit operator bool() const noexcept { return !name_.empty(); }
    void reset() noexcept {
        if (!name_.empty()) rte_eal_hotplug_remove(bus_.c_str(), name_.c_str());
        name_.clear();
    }

private:
    std::string bus_, name_;
};

// A port id whose one lifecycle stage `Undo` reverses on destruction: the
// port is handed to the handle after the stage succeeded.
template <int (*Undo)(uint16_t)>
class PortStage {
public:
    PortStage() = default;
    explicit PortStage(uint16_t port) noexcept : port_(port), owned_(true) {}
    PortStage(PortStage&& o) noexcept : port_(o.port_), owned_(std::exchange(o.owned_, false)) {}
    PortStage& operator=(PortStage&& o) noexcept {
        if (this != &o) {
            reset();
            port_ = o.port_;
            owned_ = std::exchange(o.owned_, false);
        }
        return *this;
    }
    ~PortStage() { reset(); }

    explicit operator bool() const noexcept { return owned_; }
    void reset() noexcept {
        if (owned_) Undo(port_);
        owned_ = false;
    }

private:
    uint16_t port_ = 0;
    bool owned_ = false;
};

// rte_eth_dev_configure succeeded: closed (queues released) on destruction.
using ConfiguredPort = PortStage<rte_eth_dev_close>;
// rte_eth_dev_start succeeded: stopped on destruction.
using StartedPort = PortStage<rte_eth_dev_stop>;

}  // namespace rmig::transport::dpdk
