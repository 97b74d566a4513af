#include "transport/dpdk/endpoint.hpp"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "common/error.hpp"
#include "common/log.hpp"
#include "transport/dpdk/eal.hpp"

namespace rmig::transport::dpdk {

namespace {

std::mutex g_registry_mutex;
std::map<std::string, std::weak_ptr<Endpoint>> g_registry;

constexpr uint16_t kBurst = 32;
constexpr size_t kTxBacklogMax = 4096;

std::string available_ports() {
    std::string out;
    for (uint16_t p = 0; p < RTE_MAX_ETHPORTS; ++p) {
        char name[RTE_ETH_NAME_MAX_LEN];
        if (rte_eth_dev_is_valid_port(p) && rte_eth_dev_get_name_by_port(p, name) == 0)
            out += (out.empty() ? "" : ", ") + std::string(name);
    }
    return out.empty() ? "none" : out;
}

uint64_t key(uint32_t id, bool we_accept) { return uint64_t(id) * 2 + (we_accept ? 1 : 0); }

}  // namespace

std::shared_ptr<Endpoint> Endpoint::open(const DpdkUri& uri, const Options& opts) {
    Eal::instance(uri.opts.eal_args, uri.is_vdev(), uri.is_vdev() ? "" : uri.port_name);
    std::lock_guard lock(g_registry_mutex);
    if (auto ep = g_registry[uri.port_name].lock()) return ep;
    std::shared_ptr<Endpoint> ep(new Endpoint(uri, opts));
    g_registry[uri.port_name] = ep;
    return ep;
}

Endpoint::Endpoint(const DpdkUri& uri, const Options& /*opts*/) : name_(uri.port_name) {
    try {
        setup(uri);
    } catch (...) {
        release_port();  // a half-made endpoint gives back what it took
        throw;
    }
    for (uint16_t q = 0; q < queues_.size(); ++q)
        queues_[q]->poller = std::thread([this, q] { poll_loop(q); });
}

void Endpoint::setup(const DpdkUri& uri) {
    std::string devargs = uri.devargs;
    memif_ = name_.rfind("net_memif", 0) == 0;
    memif_client_ = memif_ && devargs.find("role=client") != std::string::npos;
    // af_packet opens one socket per queue pair only when asked (qpairs=N).
    if (uri.opts.queues > 1 && name_.rfind("net_af_packet", 0) == 0 &&
        devargs.find("qpairs=") == std::string::npos)
        devargs += cat(",qpairs=", uri.opts.queues);
    if (rte_eth_dev_get_port_by_name(name_.c_str(), &port_) != 0) {
        if (int rc = rte_dev_probe(devargs.c_str()); rc != 0)
            throw Error(cat("dpdk port '", name_, "' not found and probing '", devargs,
                            "' failed: ", rte_strerror(-rc), " (ports present: ", available_ports(),
                            "; a PCI port must be bound to vfio-pci and allowed by the EAL args)"));
        probed_ = true;
        if (rte_eth_dev_get_port_by_name(name_.c_str(), &port_) != 0)
            throw Error(cat("dpdk: probing '", uri.devargs, "' created no port named '", name_,
                            "' (ports present: ", available_ports(), ")"));
    }
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(port_, &info); rc != 0)
        throw Error(cat("dpdk port ", name_, ": cannot read device info: ", rte_strerror(-rc)));
    uint16_t cur_mtu = 1500;
    rte_eth_dev_get_mtu(port_, &cur_mtu);
    uint32_t want = uri.opts.mtu ? uri.opts.mtu : cur_mtu;
    if (want > info.max_mtu) {
        log::warn("dpdk port ", name_, ": MTU ", want, " above the device maximum ", info.max_mtu,
                  "; using ", info.max_mtu);
        want = info.max_mtu;
    }
    // Jumbo frames get room to spare: af_packet wants its whole frame slot
    // (framesz=10240 for MTU 9000) to fit in one mbuf.
    uint32_t data_room = want <= 1500 ? RTE_MBUF_DEFAULT_BUF_SIZE
                                      : want + 1280 + RTE_PKTMBUF_HEADROOM;
    unsigned n_mbufs = data_room > 4096 ? 16383 : 32767;
    std::string pool_name = cat("rmig_", port_);
    int pool_socket = rte_eth_dev_socket_id(port_) < 0 ? SOCKET_ID_ANY : rte_eth_dev_socket_id(port_);
    // Application threads (not lcores, preemptible) allocate and free mbufs
    // too: the default ring pool lets them spin for whole time slices behind a
    // preempted peer (seen: 30 frames/s). The lock-free stack does not.
    pool_ = rte_pktmbuf_pool_create_by_ops(pool_name.c_str(), n_mbufs, 256, 0,
                                           static_cast<uint16_t>(data_room), pool_socket,
                                           "lf_stack");
    if (!pool_) {
        log::warn("dpdk port ", name_, ": no lock-free mbuf pool (", rte_strerror(rte_errno),
                  "); using the default ring pool");
        pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), n_mbufs, 256, 0,
                                        static_cast<uint16_t>(data_room), pool_socket);
    }
    if (!pool_)
        throw Error(cat("dpdk port ", name_, ": cannot create a pool of ", n_mbufs, " mbufs of ",
                        data_room, " bytes: ", rte_strerror(rte_errno),
                        " (give the EAL more memory: -m 1024 or more hugepages)"));
    uint16_t nq = static_cast<uint16_t>(
        std::min<uint32_t>({uri.opts.queues, info.max_rx_queues, info.max_tx_queues}));
    if (nq < 1) nq = 1;
    if (nq < uri.opts.queues)
        log::warn("dpdk port ", name_, " has room for ", nq, " queue pairs, not the ",
                  uri.opts.queues, " rmig.queues asks for; channels share them");
    rte_eth_conf conf{};
    conf.rxmode.mtu = want;
    bool forced_mtu = false;
    int rc = rte_eth_dev_configure(port_, nq, nq, &conf);
    if (rc != 0 && uri.opts.mtu) {
        // Some vdevs (af_packet) advertise 1518-byte frames yet carry whatever
        // the kernel interface's MTU allows: send the asked size anyway.
        conf.rxmode.mtu = 0;
        rc = rte_eth_dev_configure(port_, nq, nq, &conf);
        forced_mtu = rc == 0;
        if (forced_mtu)
            log::warn("dpdk port ", name_, " does not take MTU ", want,
                      " in its configuration; sending frames of that size as rmig.mtu asks");
    }
    configured_ = rc == 0;
    if (rc != 0)
        throw Error(cat("dpdk port ", name_, ": configure (", nq, " rx + ", nq,
                        " tx queues, MTU ", want, ") failed: ", rte_strerror(-rc)));
    uint16_t nrx = 1024, ntx = 1024;
    rte_eth_dev_adjust_nb_rx_tx_desc(port_, &nrx, &ntx);
    int sock = rte_eth_dev_socket_id(port_);
    for (uint16_t q = 0; q < nq; ++q) {
        if (int qrc = rte_eth_rx_queue_setup(port_, q, nrx,
                                            sock < 0 ? SOCKET_ID_ANY : unsigned(sock), nullptr, pool_);
            qrc != 0)
            throw Error(cat("dpdk port ", name_, ": rx queue ", q, " setup failed: ",
                            rte_strerror(-qrc)));
        if (int qrc = rte_eth_tx_queue_setup(port_, q, ntx,
                                            sock < 0 ? SOCKET_ID_ANY : unsigned(sock), nullptr);
            qrc != 0)
            throw Error(cat("dpdk port ", name_, ": tx queue ", q, " setup failed: ",
                            rte_strerror(-qrc)));
        queues_.push_back(std::make_unique<Queue>());
        queues_.back()->tx_batch.reserve(kBurst * 4);
    }
    if (int src = rte_eth_dev_start(port_); src != 0)
        throw Error(cat("dpdk port ", name_, ": start failed: ", rte_strerror(-src),
                        name_.rfind("net_memif", 0) == 0
                            ? " (a memif client needs its server's socket: start the listening "
                              "side first, with the same socket path)"
                            : ""));
    started_ = true;
    rte_eth_promiscuous_enable(port_);  // not every vdev has it; point-to-point links need none
    rte_eth_dev_get_mtu(port_, &cur_mtu);
    mtu_ = forced_mtu ? want : cur_mtu;
    mss_ = std::min<uint32_t>(mtu_, data_room - RTE_PKTMBUF_HEADROOM - RTE_ETHER_HDR_LEN) - 40;
    rte_eth_macaddr_get(port_, &mac_);
    log::info("dpdk port ", name_, " (", port_, ") up: MTU ", mtu_, ", ", mss_,
              " payload bytes per frame, ", nq, " queue pair", nq > 1 ? "s" : "");
}

void Endpoint::release_port() {
    if (started_) {
        rte_eth_dev_stop(port_);
        started_ = false;
    }
    if (configured_ || started_) rte_eth_dev_close(port_);
    configured_ = false;
    if (probed_) rte_eal_hotplug_remove("vdev", name_.c_str());
    probed_ = false;
    if (pool_) rte_mempool_free(pool_);
    pool_ = nullptr;
}

Endpoint::~Endpoint() {
    stop_ = true;
    for (auto& q : queues_)
        if (q->poller.joinable()) q->poller.join();
    if (!queues_.empty()) goodbye();
    for (auto& q : queues_) {
        for (auto* m : q->tx_batch) rte_pktmbuf_free(m);
        q->tx_batch.clear();
    }
    conns_.clear();
    incoming_.clear();
    release_port();
    std::lock_guard lock(g_registry_mutex);
    auto it = g_registry.find(name_);
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

bool Endpoint::link_up() const {
    rte_eth_link link{};
    return rte_eth_link_get_nowait(port_, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

void Endpoint::require_link(Millis timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!link_up()) {
        if (std::chrono::steady_clock::now() > deadline)
            throw LinkError(cat("dpdk port ", name_, ": link down after ", timeout.count(),
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
    if (!conns_.emplace(key(id, acceptor), c).second)
        throw Error(cat("dpdk port ", name_, ": connection id ", id, " already in use"));
    ++conns_generation_;
    return c;
}

void Endpoint::remove(const Connection& c) {
    std::lock_guard lock(m_);
    if (conns_.erase(key(c.id(), c.acceptor()))) ++conns_generation_;
}

void Endpoint::start_listening(const ConnConfig& cfg) {
    std::lock_guard lock(m_);
    if (listening_) throw Error(cat("dpdk port ", name_, " already has a listener in this process"));
    listening_ = true;
    listen_cfg_ = cfg;
}

void Endpoint::stop_listening() {
    std::lock_guard lock(m_);
    listening_ = false;
    for (auto& c : incoming_) conns_.erase(key(c->id(), true));
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

rte_mbuf* Endpoint::alloc() { return rte_pktmbuf_alloc(pool_); }

void Endpoint::fill_headers(rte_mbuf* m, const rte_ether_addr& dst, const proto::SegmentHeader& h) {
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->dst_addr = dst;
    eth->src_addr = mac_;
    eth->ether_type = rte_cpu_to_be_16(proto::kEtherType);
    auto* p = reinterpret_cast<std::byte*>(eth + 1);
    proto::encode(h, std::span<std::byte, proto::kSegmentHeaderSize>(p, proto::kSegmentHeaderSize));
}

void Endpoint::send_control(uint16_t q, const rte_ether_addr& dst, const proto::SegmentHeader& h,
                            std::span<const std::byte> payload) {
    rte_mbuf* m = alloc();
    if (!m) return;  // pool exhausted: the peer's timers cover a lost control frame
    char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(kFrameOverhead + payload.size()));
    if (!p) {
        rte_pktmbuf_free(m);
        return;
    }
    fill_headers(m, dst, h);
    if (!payload.empty()) std::memcpy(p + kFrameOverhead, payload.data(), payload.size());
    queue_tx(q, m);
}

void Endpoint::queue_tx(uint16_t q, rte_mbuf* m) {
    auto& b = queues_[q]->tx_batch;
    b.push_back(m);
    if (b.size() >= kBurst && b.size() % kBurst == 0) flush_tx(q);
}

void Endpoint::flush_tx(uint16_t q) {
    auto& b = queues_[q]->tx_batch;
    size_t sent = 0;
    for (int tries = 0; sent < b.size() && tries < 4; ++tries)
        sent += rte_eth_tx_burst(port_, q, b.data() + sent, static_cast<uint16_t>(b.size() - sent));
    b.erase(b.begin(), b.begin() + long(sent));
    queues_[q]->tx_frames.fetch_add(sent, std::memory_order_relaxed);
    // A full tx ring (the peer polls slower than we send) holds frames back for
    // the next round; connections stop adding new data meanwhile (tx_room).
    // Only far beyond that are frames dropped: retransmission repairs them.
    if (b.size() > kTxBacklogMax) {
        for (size_t i = kTxBacklogMax; i < b.size(); ++i) rte_pktmbuf_free(b[i]);
        b.resize(kTxBacklogMax);
    }
}

void Endpoint::refresh(uint16_t q, PollerView& view) {
    uint64_t g = conns_generation_.load(std::memory_order_acquire);
    if (g == view.generation) return;
    std::lock_guard lock(m_);
    view.generation = conns_generation_.load(std::memory_order_relaxed);
    view.all = conns_;
    view.mine.clear();
    for (auto& [k, c] : conns_)
        if (c->queue() == q) view.mine.push_back(c);
}

void Endpoint::handle(uint16_t q, const PollerView& view, rte_mbuf* m, uint64_t now) {
    if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
        rte_pktmbuf_free(m);
        return;
    }
    if (m->data_len < kFrameOverhead) {
        rte_pktmbuf_free(m);
        return;
    }
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    if (eth->ether_type != rte_cpu_to_be_16(proto::kEtherType)) {
        rte_pktmbuf_free(m);
        return;
    }
    auto* body = reinterpret_cast<const std::byte*>(eth + 1);
    auto h = proto::decode(std::span(body, m->data_len - RTE_ETHER_HDR_LEN));
    if (!h) {
        rte_pktmbuf_free(m);
        return;
    }
    rte_ether_addr from = eth->src_addr;
    bool from_acceptor = h->flags & proto::kFromAcceptor;
    std::shared_ptr<Connection> c;
    // Fast path: the poller's own view, no endpoint lock. A connection it
    // does not know yet (a new SYN, or one created since the last refresh)
    // is looked up under the lock.
    if (auto it = view.all.find(key(h->conn_id, !from_acceptor)); it != view.all.end())
        c = it->second;
    if (!c && h->type != proto::SegmentType::bye && h->type != proto::SegmentType::bye_ack) {
        std::lock_guard lock(m_);
        auto it = conns_.find(key(h->conn_id, !from_acceptor));
        if (it != conns_.end()) c = it->second;
        if (!c && h->type == proto::SegmentType::syn && listening_) {
            ConnConfig cfg = listen_cfg_;
            // The SYN names the connector's queue: use the same index, so on
            // memif both directions of the connection use one ring pair.
            uint16_t cq = h->queue < queues_.size() ? h->queue : least_used_queue_locked();
            c = std::make_shared<Connection>(*this, h->conn_id, true, from, cfg,
                                             cat("dpdk connection ", h->conn_id, " from ",
                                                 name_),
                                             cq);
            conns_.emplace(key(h->conn_id, true), c);
            ++conns_generation_;
            incoming_.push_back(c);
            incoming_cv_.notify_all();
        }
    }
    if (c && c->queue() != q) queues_[q]->foreign_rx.fetch_add(1, std::memory_order_relaxed);
    proto::SegmentHeader reply;
    reply.conn_id = h->conn_id;
    reply.flags = from_acceptor ? 0 : proto::kFromAcceptor;
    reply.queue = c ? static_cast<uint8_t>(c->queue()) : static_cast<uint8_t>(q);
    switch (h->type) {
    case proto::SegmentType::syn:
        if (c) {
            reply.type = proto::SegmentType::syn_ack;
            c->note_rx(now);
        } else {
            reply.type = proto::SegmentType::rst;
        }
        send_control(q, from, reply);
        break;
    case proto::SegmentType::syn_ack:
        if (c) c->on_syn_ack(from, now);
        break;
    case proto::SegmentType::data:
        if (c) {
            uint64_t seq = h->seq, stamp = h->timestamp;
            rte_pktmbuf_adj(m, kFrameOverhead);
            rte_pktmbuf_trim(m, static_cast<uint16_t>(m->data_len - h->length));
            c->on_data(m, seq, stamp, now);
            return;
        }
        if (h->flags & proto::kFin) {
            // The FIN of a connection we already closed: its ack was lost.
            reply.type = proto::SegmentType::ack;
            reply.seq = h->seq + 1;
            reply.window_limit = h->seq + 1;
            send_control(q, from, reply);
        } else if (now - queues_[q]->unknown_rst_ns > 1'000'000) {
            reply.type = proto::SegmentType::rst;
            send_control(q, from, reply);
            queues_[q]->unknown_rst_ns = now;
        }
        break;
    case proto::SegmentType::ack:
        if (c) c->on_ack(h->seq, h->window_limit, h->timestamp, std::span(body + 40, h->length), now);
        break;
    case proto::SegmentType::rst:
        if (c) c->on_rst("peer reset the connection (it has no such connection or aborted it)");
        break;
    case proto::SegmentType::bye: {
        reply.type = proto::SegmentType::bye_ack;
        send_control(q, from, reply);
        flush_tx(q);
        // memif (DPDK 22.11) can crash a receiver polling while its peer
        // disconnects: stop polling (every queue) until the link drops or a
        // second passes.
        peer_said_bye_ = true;
        rx_paused_until_ = now + 1'000'000'000;
        std::lock_guard lock(m_);
        for (auto& [k, conn] : conns_) conn->on_rst("peer port closed");
        break;
    }
    case proto::SegmentType::bye_ack:
        got_bye_ack_ = true;
        break;
    }
    rte_pktmbuf_free(m);
}

size_t Endpoint::poll_once(uint16_t q, PollerView& view, uint64_t now) {
    size_t work = 0;
    refresh(q, view);
    if (uint64_t paused = rx_paused_until_.load()) {
        if (now < paused && link_up()) return 0;
        rx_paused_until_.compare_exchange_strong(paused, 0);
    }
    rte_mbuf* rx[kBurst];
    uint16_t n = rte_eth_rx_burst(port_, q, rx, kBurst);
    queues_[q]->rx_frames.fetch_add(n, std::memory_order_relaxed);
    for (uint16_t i = 0; i < n; ++i) handle(q, view, rx[i], now);
    work += n;
    for (auto& c : view.mine) work += c->service(now);
    flush_tx(q);
    return work;
}

void Endpoint::poll_loop(uint16_t q) {
    rte_thread_register();  // an lcore id gives the mempool a per-thread cache
    PollerView view;
    uint64_t idle_since = 0;
    const bool debug = std::getenv("RMIG_DPDK_DEBUG") != nullptr;
    uint64_t last_debug = now_ns();
    while (!stop_) {
        uint64_t now = now_ns();
        if (debug && now - last_debug > 2'000'000'000) {
            last_debug = now;
            log::warn("dpdk debug ", name_, " queue ", q, ": pool avail ",
                      rte_mempool_avail_count(pool_), " in use ", rte_mempool_in_use_count(pool_),
                      " tx backlog ", queues_[q]->tx_batch.size(), " link ", link_up());
            for (auto& c : view.mine) log::warn("  ", c->debug_state());
        }
        if (poll_once(q, view, now) > 0) {
            idle_since = 0;
            continue;
        }
        if (!idle_since) idle_since = now;
        // Busy-poll while traffic is recent, then back off so an idle port
        // does not burn a CPU (the test machines have two).
        if (now - idle_since > 2'000'000)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        else if (now - idle_since > 100'000)
            std::this_thread::yield();
    }
    flush_tx(q);
    rte_thread_unregister();
}

void Endpoint::goodbye() {
    // Tell the peer port we go, and wait (briefly) until it stopped polling
    // before the device closes (docs/dpdk-protocol.md, "Port shutdown").
    bool sent_bye = !peer_said_bye_ && link_up();
    if (sent_bye) say_bye();
    if (!peer_said_bye_ || !memif_) return;
    // DPDK 22.11's memif frees its shared regions in memif_disconnect, which
    // both our dev_close and its control thread (on the peer's disconnect
    // message) run; run at once, they free twice ("EAL: Error: Invalid
    // memory" at exit, seen with jumbo bsize). So the side the peer said BYE
    // to lets the peer close first: it waits (up to 1 s) for the link to drop.
    // When both said BYE at once, the memif client closes first.
    if (!(sent_bye && memif_client_)) {
        uint64_t start = now_ns();
        while (link_up() && now_ns() - start < 1'000'000'000)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

void Endpoint::say_bye() {
    proto::SegmentHeader bye;
    bye.type = proto::SegmentType::bye;
    rte_ether_addr bcast;
    memset(&bcast, 0xff, sizeof bcast);
    uint64_t start = now_ns(), last = 0;
    while (!got_bye_ack_ && !peer_said_bye_ && now_ns() - start < 300'000'000) {
        uint64_t now = now_ns();
        if (now - last > 20'000'000) {
            send_control(0, bcast, bye);
            flush_tx(0);
            last = now;
        }
        rte_mbuf* rx[kBurst];
        uint16_t n = 0;
        for (uint16_t q = 0; q < queues_.size() && !n; ++q)
            n = rte_eth_rx_burst(port_, q, rx, kBurst);
        for (uint16_t i = 0; i < n; ++i) {
            auto* eth = rte_pktmbuf_mtod(rx[i], rte_ether_hdr*);
            auto h = eth->ether_type == rte_cpu_to_be_16(proto::kEtherType) && rx[i]->data_len >= kFrameOverhead
                         ? proto::decode(std::span(reinterpret_cast<const std::byte*>(eth + 1),
                                                   rx[i]->data_len - RTE_ETHER_HDR_LEN))
                         : std::nullopt;
            if (h && h->type == proto::SegmentType::bye_ack) got_bye_ack_ = true;
            if (h && h->type == proto::SegmentType::bye) {
                proto::SegmentHeader ack;
                ack.type = proto::SegmentType::bye_ack;
                send_control(0, eth->src_addr, ack);
                flush_tx(0);
                peer_said_bye_ = true;
            }
            rte_pktmbuf_free(rx[i]);
        }
        if (!n) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
}

}  // namespace rmig::transport::dpdk
