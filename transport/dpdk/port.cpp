#include "transport/dpdk/port.hpp"

#include <rte_bus.h>
#include <rte_errno.h>

#include <algorithm>
#include <optional>

#include "common/error.hpp"
#include "common/log.hpp"

namespace rmig::transport::dpdk {

namespace {

std::string available_ports() {
    std::string out;
    for (uint16_t p = 0; p < RTE_MAX_ETHPORTS; ++p) {
        char name[RTE_ETH_NAME_MAX_LEN];
        if (rte_eth_dev_is_valid_port(p) && rte_eth_dev_get_name_by_port(p, name) == 0)
            out += (out.empty() ? "" : ", ") + std::string(name);
    }
    return out.empty() ? "none" : out;
}

// af_packet opens one socket per queue pair only when asked (qpairs=N).
std::string devargs_for(const DpdkUri& uri) {
    std::string devargs = uri.devargs;
    if (uri.opts.queues > 1 && uri.port_name.rfind("net_af_packet", 0) == 0 &&
        devargs.find("qpairs=") == std::string::npos)
        devargs += cat(",qpairs=", uri.opts.queues);
    return devargs;
}

// Jumbo frames get room to spare: af_packet wants its whole frame slot
// (framesz=10240 for MTU 9000) to fit in one mbuf.
uint32_t data_room_for(uint32_t mtu) {
    return mtu <= 1500 ? RTE_MBUF_DEFAULT_BUF_SIZE : mtu + 1280 + RTE_PKTMBUF_HEADROOM;
}

int socket_of(uint16_t port) {
    int s = rte_eth_dev_socket_id(port);
    return s < 0 ? SOCKET_ID_ANY : s;
}

}  // namespace

Port::Port(const DpdkUri& uri) : name_(uri.port_name) {
    find_or_probe(uri);
    rte_eth_dev_info info = device_info();
    uint32_t want = choose_mtu(uri.opts.mtu, info);
    uint32_t data_room = data_room_for(want);
    create_pool(data_room);
    uint16_t nq = choose_queue_pairs(uri.opts.queues, info);
    bool forced_mtu = configure(nq, want, uri.opts.mtu != 0);
    setup_queues(nq);
    start();
    rte_eth_promiscuous_enable(id_);  // not every vdev has it; point-to-point links need none
    uint16_t cur_mtu = 1500;
    rte_eth_dev_get_mtu(id_, &cur_mtu);
    mtu_ = forced_mtu ? want : cur_mtu;
    mss_ = std::min<uint32_t>(mtu_, data_room - RTE_PKTMBUF_HEADROOM - RTE_ETHER_HDR_LEN) - 40;
    rte_eth_macaddr_get(id_, &mac_);
    log::info("dpdk port ", name_, " (", id_, ") up: MTU ", mtu_, ", ", mss_,
              " payload bytes per frame, ", nq, " queue pair", nq > 1 ? "s" : "");
}

// memif must not tear a client's connection down on its own thread while
// this port closes it: the guard stops passing anything on first.
Port::~Port() { freeze_memif_guard(); }

void Port::set_around_memif_disconnect(MemifGuard::Around around) {
    if (guard_) guard_->set_around_disconnect(std::move(around));
}

void Port::freeze_memif_guard() {
    if (guard_) guard_->freeze();
}

// The EAL may have created the port from its own arguments (--vdev, -a);
// otherwise we probe the URI's devargs, and remove the device again at the end.
void Port::find_or_probe(const DpdkUri& uri) {
    if (rte_eth_dev_get_port_by_name(name_.c_str(), &id_) == 0) return;
    std::string devargs = devargs_for(uri);
    // memif talks to its peer through rmig's guard, on a private socket
    // (memif_guard.hpp: memif aborts the process on a client gone too soon,
    // and unmaps the rings under a poller when its peer leaves). A client's
    // guard connects to the server first: none is an error before probing.
    std::optional<MemifSocket> memif = memif_socket(devargs);
    std::string inner = memif ? private_memif_socket_name() : "";
    if (memif) devargs = with_memif_socket(devargs, inner);
    if (memif && memif->role == MemifRole::client)
        guard_ = std::make_unique<MemifGuard>(MemifRole::client, memif->name, inner);
    if (int rc = rte_dev_probe(devargs.c_str()); rc != 0)
        throw Error(cat("dpdk port '", name_, "' not found and probing '", devargs,
                        "' failed: ", rte_strerror(-rc), " (ports present: ", available_ports(),
                        "; a PCI port must be bound to vfio-pci and allowed by the EAL args)"));
    device_ = ProbedDevice("vdev", name_);
    if (rte_eth_dev_get_port_by_name(name_.c_str(), &id_) != 0)
        throw Error(cat("dpdk: probing '", uri.devargs, "' created no port named '", name_,
                        "' (ports present: ", available_ports(), ")"));
    if (memif && memif->role == MemifRole::server)
        guard_ = std::make_unique<MemifGuard>(MemifRole::server, memif->name, inner);
}

rte_eth_dev_info Port::device_info() const {
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(id_, &info); rc != 0)
        throw Error(cat("dpdk port ", name_, ": cannot read device info: ", rte_strerror(-rc)));
    return info;
}

// rmig.mtu if given (capped by the device), else the port's current MTU.
uint32_t Port::choose_mtu(uint32_t asked, const rte_eth_dev_info& info) const {
    uint16_t cur_mtu = 1500;
    rte_eth_dev_get_mtu(id_, &cur_mtu);
    uint32_t want = asked ? asked : cur_mtu;
    if (want > info.max_mtu) {
        log::warn("dpdk port ", name_, ": MTU ", want, " above the device maximum ", info.max_mtu,
                  "; using ", info.max_mtu);
        want = info.max_mtu;
    }
    return want;
}

void Port::create_pool(uint32_t data_room) {
    unsigned n_mbufs = data_room > 4096 ? 16383 : 32767;
    std::string pool_name = cat("rmig_", id_);
    int socket = socket_of(id_);
    // Application threads (not lcores, preemptible) allocate and free mbufs
    // too: the default ring pool lets them spin for whole time slices behind a
    // preempted peer (seen: 30 frames/s). The lock-free stack does not.
    pool_.reset(rte_pktmbuf_pool_create_by_ops(pool_name.c_str(), n_mbufs, 256, 0,
                                               static_cast<uint16_t>(data_room), socket,
                                               "lf_stack"));
    if (!pool_) {
        log::warn("dpdk port ", name_, ": no lock-free mbuf pool (", rte_strerror(rte_errno),
                  "); using the default ring pool");
        pool_.reset(rte_pktmbuf_pool_create(pool_name.c_str(), n_mbufs, 256, 0,
                                            static_cast<uint16_t>(data_room), socket));
    }
    if (!pool_)
        throw Error(cat("dpdk port ", name_, ": cannot create a pool of ", n_mbufs, " mbufs of ",
                        data_room, " bytes: ", rte_strerror(rte_errno),
                        " (give the EAL more memory: -m 1024 or more hugepages)"));
}

uint16_t Port::choose_queue_pairs(uint32_t asked, const rte_eth_dev_info& info) const {
    uint16_t nq = static_cast<uint16_t>(
        std::min<uint32_t>({asked, info.max_rx_queues, info.max_tx_queues}));
    if (nq < 1) nq = 1;
    if (nq < asked)
        log::warn("dpdk port ", name_, " has room for ", nq, " queue pairs, not the ", asked,
                  " rmig.queues asks for; channels share them");
    return nq;
}

bool Port::configure(uint16_t nq, uint32_t mtu, bool mtu_asked) {
    rte_eth_conf conf{};
    conf.rxmode.mtu = mtu;
    bool forced_mtu = false;
    int rc = rte_eth_dev_configure(id_, nq, nq, &conf);
    if (rc != 0 && mtu_asked) {
        // Some vdevs (af_packet) advertise 1518-byte frames yet carry whatever
        // the kernel interface's MTU allows: send the asked size anyway.
        conf.rxmode.mtu = 0;
        rc = rte_eth_dev_configure(id_, nq, nq, &conf);
        forced_mtu = rc == 0;
        if (forced_mtu)
            log::warn("dpdk port ", name_, " does not take MTU ", mtu,
                      " in its configuration; sending frames of that size as rmig.mtu asks");
    }
    if (rc != 0)
        throw Error(cat("dpdk port ", name_, ": configure (", nq, " rx + ", nq,
                        " tx queues, MTU ", mtu, ") failed: ", rte_strerror(-rc)));
    configured_ = ConfiguredPort(id_);
    return forced_mtu;
}

void Port::setup_queues(uint16_t nq) {
    uint16_t nrx = 1024, ntx = 1024;
    rte_eth_dev_adjust_nb_rx_tx_desc(id_, &nrx, &ntx);
    auto sock = static_cast<unsigned>(socket_of(id_));
    for (uint16_t q = 0; q < nq; ++q) {
        if (int rc = rte_eth_rx_queue_setup(id_, q, nrx, sock, nullptr, pool_.get()); rc != 0)
            throw Error(cat("dpdk port ", name_, ": rx queue ", q, " setup failed: ",
                            rte_strerror(-rc)));
        if (int rc = rte_eth_tx_queue_setup(id_, q, ntx, sock, nullptr); rc != 0)
            throw Error(cat("dpdk port ", name_, ": tx queue ", q, " setup failed: ",
                            rte_strerror(-rc)));
    }
    queues_ = nq;
}

void Port::start() {
    if (int rc = rte_eth_dev_start(id_); rc != 0)
        throw Error(cat("dpdk port ", name_, ": start failed: ", rte_strerror(-rc),
                        name_.rfind("net_memif", 0) == 0
                            ? " (a memif client needs its server's socket: start the listening "
                              "side first, with the same socket path)"
                            : ""));
    started_ = StartedPort(id_);
}

bool Port::link_up() const {
    rte_eth_link link{};
    return rte_eth_link_get_nowait(id_, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

}  // namespace rmig::transport::dpdk
