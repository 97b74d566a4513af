#include "transport/dpdk/endpoint.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "transport/dpdk/eal.hpp"

namespace rmig::transport::dpdk {

namespace {

// The endpoints open in this process, by port name.
std::mutex g_registry_mutex;
std::map<std::string, std::weak_ptr<Endpoint>> g_registry;

}  // namespace

std::shared_ptr<Endpoint> Endpoint::open(const DpdkUri& uri, const Options& opts) {
    Eal::instance(uri.opts.eal_args, uri.is_vdev(), uri.is_vdev() ? "" : uri.port_name);
    std::lock_guard lock(g_registry_mutex);
    if (auto ep = g_registry[uri.port_name].lock()) return ep;
    std::shared_ptr<Endpoint> ep(new Endpoint(uri, opts));
    g_registry[uri.port_name] = ep;
    return ep;
}

Endpoint::Endpoint(const DpdkUri& uri, const Options& /*opts*/)
    : port_(uri),
      memif_(uri.port_name.rfind("net_memif", 0) == 0),
      memif_client_(memif_ && uri.devargs.find("role=client") != std::string::npos) {
    for (uint16_t q = 0; q < port_.queues(); ++q) {
        queues_.push_back(std::make_unique<Queue>());
        queues_.back()->tx_batch.reserve(kBurst * 4);
    }
    // memif learns of its peer's leaving (through rmig's guard) only while no
    // poller is inside a burst: it unmaps the rings on its own thread.
    port_.set_around_memif_disconnect([this](const std::function<void()>& leave) {
        std::vector<std::unique_lock<std::mutex>> held;
        for (auto& q : queues_) held.emplace_back(q->burst);
        leave();
    });
    start_pollers();
}

// Teardown order matters (docs/dpdk-protocol.md, "Port shutdown"): the pollers
// stop first, since memif can crash a receiver polling while its peer
// disconnects; then the BYE handshake lets the peer stop polling too; then the
// members go in reverse order of declaration: tx backlogs and connections hand
// their mbufs back before port_ stops, closes and frees the pool.
Endpoint::~Endpoint() {
    stop_pollers();
    if (!queues_.empty()) goodbye();
    port_.freeze_memif_guard();  // before queues_ (its hook's) go
    std::lock_guard lock(g_registry_mutex);
    auto it = g_registry.find(port_name());
    if (it != g_registry.end() && it->second.expired()) g_registry.erase(it);
}

std::vector<QueueStats> Endpoint::queue_stats() const {
    std::vector<QueueStats> out;
    for (auto& q : queues_)
        out.push_back({q->rx_frames.load(std::memory_order_relaxed),
                       q->tx_frames.load(std::memory_order_relaxed),
                       q->foreign_rx.load(std::memory_order_relaxed)});
    return out;
}

void Endpoint::require_link(Millis timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!link_up()) {
        if (std::chrono::steady_clock::now() > deadline)
            throw LinkError(cat("dpdk port ", port_name(), ": link down after ", timeout.count(),
                                " ms (memif: is the peer process up on the same socket, with the same "
                                "rmig.queues? "
                                "af_packet: is the interface up and cabled?)"));
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

uint16_t Endpoint::least_used_queue_locked() const {
    std::vector<size_t> use(queues_.size());
    for (auto& [k, c] : conns_) ++use[c->queue()];
    return static_cast<uint16_t>(std::min_element(use.begin(), use.end()) - use.begin());
}

std::shared_ptr<Connection> Endpoint::create(uint32_t id, bool acceptor, const rte_ether_addr& peer,
                                             const ConnConfig& cfg, const std::string& name) {
    std::lock_guard lock(m_);
    auto c = std::make_shared<Connection>(*this, id, acceptor, peer, cfg, name,
                                          least_used_queue_locked());
    if (!conns_.emplace(connection_key(id, acceptor), c).second)
        throw Error(cat("dpdk port ", port_name(), ": connection id ", id, " already in use"));
    ++conns_generation_;
    return c;
}

void Endpoint::remove(const Connection& c) {
    std::lock_guard lock(m_);
    if (conns_.erase(connection_key(c.id(), c.acceptor()))) ++conns_generation_;
}

void Endpoint::start_listening(const ConnConfig& cfg) {
    std::lock_guard lock(m_);
    if (listening_) throw Error(cat("dpdk port ", port_name(), " already has a listener in this process"));
    listening_ = true;
    listen_cfg_ = cfg;
}

void Endpoint::stop_listening() {
    std::lock_guard lock(m_);
    listening_ = false;
    for (auto& c : incoming_) conns_.erase(connection_key(c->id(), true));
    incoming_.clear();
    ++conns_generation_;
}

std::shared_ptr<Connection> Endpoint::next_incoming(Millis timeout) {
    std::unique_lock lock(m_);
    if (!incoming_cv_.wait_for(lock, timeout, [&] { return !incoming_.empty(); })) return nullptr;
    auto c = incoming_.front();
    incoming_.pop_front();
    return c;
}

void Endpoint::fill_headers(rte_mbuf* m, const rte_ether_addr& dst, const proto::SegmentHeader& h) {
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->dst_addr = dst;
    eth->src_addr = mac();
    eth->ether_type = rte_cpu_to_be_16(proto::kEtherType);
    auto* p = reinterpret_cast<std::byte*>(eth + 1);
    proto::encode(h, std::span<std::byte, proto::kSegmentHeaderSize>(p, proto::kSegmentHeaderSize));
}

void Endpoint::send_control(uint16_t q, const rte_ether_addr& dst, const proto::SegmentHeader& h,
                            std::span<const std::byte> payload) {
    Mbuf m = alloc();
    if (!m) return;  // pool exhausted: the peer's timers cover a lost control frame
    char* p = rte_pktmbuf_append(m.get(), static_cast<uint16_t>(kFrameOverhead + payload.size()));
    if (!p) return;
    fill_headers(m.get(), dst, h);
    if (!payload.empty()) std::memcpy(p + kFrameOverhead, payload.data(), payload.size());
    queue_tx(q, std::move(m));
}

void Endpoint::queue_tx(uint16_t q, Mbuf m) {
    auto& b = queues_[q]->tx_batch;
    b.push(std::move(m));
    if (b.size() >= kBurst && b.size() % kBurst == 0) flush_tx(q);
}

}  // namespace rmig::transport::dpdk
