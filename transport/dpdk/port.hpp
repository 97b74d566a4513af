// The DPDK port an Endpoint drives: found by name (or probed from the URI's
// devargs), given its mbuf pool, configured with N rx/tx queue pairs and
// started. Each stage is held by its own handle (dpdk_handles.hpp): a failure
// part-way undoes exactly the stages done, and destruction stops the port,
// closes it, removes a device we probed and only then frees the pool its rx
// queues drew from. Whoever destroys a Port must have stopped polling it first
// (memif can crash a receiver polling while its port goes away).
#pragma once

#include <rte_ether.h>
#include <rte_ethdev.h>

#include <cstdint>
#include <memory>
#include <string>

#include "transport/dpdk/dpdk_handles.hpp"
#include "transport/dpdk/dpdk_uri.hpp"
#include "transport/dpdk/memif_guard.hpp"

namespace rmig::transport::dpdk {

class Port {
public:
    explicit Port(const DpdkUri& uri);  // throws Error saying what to check
    ~Port();
    Port(const Port&) = delete;
    Port& operator=(const Port&) = delete;

    const std::string& name() const { return name_; }
    uint16_t id() const { return id_; }
    rte_mempool* pool() const { return pool_.get(); }
    uint16_t queues() const { return queues_; }
    uint32_t mtu() const { return mtu_; }
    uint32_t mss() const { return mss_; }  // payload bytes per frame
    const rte_ether_addr& mac() const { return mac_; }
    bool link_up() const;

    // A memif port's guard (memif_guard.hpp): how the peer's leaving is
    // passed on to memif, and its end before the port closes. No-ops on
    // other ports.
    void set_around_memif_disconnect(MemifGuard::Around around);
    void freeze_memif_guard();

private:
    void find_or_probe(const DpdkUri& uri);
    rte_eth_dev_info device_info() const;
    uint32_t choose_mtu(uint32_t asked, const rte_eth_dev_info& info) const;
    void create_pool(uint32_t data_room);
    uint16_t choose_queue_pairs(uint32_t asked, const rte_eth_dev_info& info) const;
    bool configure(uint16_t nq, uint32_t mtu, bool mtu_asked);  // true: MTU forced past the PMD
    void setup_queues(uint16_t nq);
    void start();

    std::string name_;
    uint16_t id_ = 0;
    uint16_t queues_ = 0;
    uint32_t mtu_ = 1500, mss_ = 1460;
    rte_ether_addr mac_{};

    // Released in reverse order of declaration: stop, close, remove the
    // device, free the pool (as the port's rx rings may hold its mbufs until
    // close), and last the guard in front of memif's socket.
    std::unique_ptr<MemifGuard> guard_;
    Mempool pool_;
    ProbedDevice device_;
    ConfiguredPort configured_;
    StartedPort started_;
};

}  // namespace rmig::transport::dpdk
