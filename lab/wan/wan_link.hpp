// An emulated WAN between two network namespaces, NAME-a and NAME-b, for the
// lab: kernel TCP (cubic, bbr) on each side sees a real RTT, bottleneck and
// loss, because every packet crosses a userspace forwarder that delays,
// rate-limits and drops it (this kernel has no netem; docs/wan-emulator.md).
//
// Each path is a pair of TUN devices of the same name (wan0, wan1, ...), one
// in each namespace, with host .1 of the path's subnet in A and .2 in B, and
// two Forwarders (A->B, B->A) sharing the path's outage schedule. Path 1 is
// the link; more paths join the same namespaces with shapes of their own
// (multi-path work).
//
// Everything is owned: the destructor stops the forwarders, closes the TUN
// fds (which removes the devices) and deletes both namespaces, and a
// constructor that fails part way undoes what it did. A NameLock keeps two
// live links from sharing a name; namespaces of that name left by a killed
// run are deleted at start.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"
#include "lab/wan/forwarder.hpp"
#include "lab/wan/interface_config.hpp"
#include "lab/wan/link_shape.hpp"
#include "lab/wan/name_lock.hpp"
#include "lab/wan/net_namespace.hpp"
#include "lab/wan/tun_device.hpp"

namespace rmig::wan {

// A TUN device does not push back on the sender when the forwarder falls
// behind: packets beyond its transmit queue are dropped inside the kernel
// before the forwarder sees them. Those drops are the emulator's, not the
// shape's. The kernel's 500 packets overflowed whenever the forwarder lost
// its core for a moment (cubic over 25 ms fell to ~260 Mbit/s on such drops
// on this 2-core machine); 10000 packets (15 MB at 1500 B) absorb that, at
// the price of a hidden delay while the forwarder catches up. Drops that
// still happen are counted (dropped_device_in). docs/wan-emulator.md.
inline constexpr unsigned kDefaultTxQueueLen = 10000;

struct PathConfig {
    LinkShape shape;  // both directions
    Ipv4Subnet subnet;
};

struct WanConfig {
    std::string name;               // namespaces NAME-a and NAME-b; letters, digits, '-', '_', at most 24
    std::vector<PathConfig> paths;  // at least one; path i uses device wan<i>
    unsigned mtu = 1500;
    std::string congestion_control;            // net.ipv4.tcp_congestion_control in both; empty: leave as is
    uint64_t tcp_buffer_max = 0;               // max of net.ipv4.tcp_rmem/tcp_wmem in both; 0: leave as is
    unsigned txqueuelen = kDefaultTxQueueLen;  // of the TUN devices: see kDefaultTxQueueLen
    // TSO through the link (tcp_segments.hpp): the model still acts per
    // segment; ~10x the forwarding rate of one packet per system call.
    bool offload = true;
    // How late a packet may leave so that one wake-up writes several
    // (Forwarder); unset: default_coalesce(the path's delay).
    std::optional<Nanos> coalesce;
    uint64_t seed = 1;  // loss and reordering draws
    // Outages count from start_outage_clock() (rmig-wan: SIGUSR1) instead of
    // from when the link is up: a benchmark starts them with its migration.
    bool outage_clock_on_signal = false;
};

// 1% of the one-way delay, at most 200 us: the RTT stays within 1% of the
// shape's, and 200 us already cut the forwarder's CPU by a third at 100 Mbit/s
// and 1 Gbit/s (docs/wan-emulator.md). Zero for a path with no delay.
Nanos default_coalesce(Nanos delay);

// The default subnet of path i (0-based): 10.201.i.0/24.
Ipv4Subnet default_subnet(size_t path);
// Throws UsageError for a bad name.
void check_link_name(const std::string& name);

// The forwarders' counters, and what the TUN devices themselves dropped:
// `device_in` packets the near device could not queue for the forwarder
// (its transmit queue was full: the forwarder fell behind), `device_out`
// packets the far device's receive path refused.
struct PathStats {
    DirectionStats a_to_b, b_to_a;
    uint64_t device_in_a_to_b = 0, device_out_a_to_b = 0;
    uint64_t device_in_b_to_a = 0, device_out_b_to_a = 0;
};

class WanLink {
public:
    explicit WanLink(WanConfig config);  // throws Error with context; undoes partial setup
    ~WanLink();
    WanLink(const WanLink&) = delete;
    WanLink& operator=(const WanLink&) = delete;

    const WanConfig& config() const { return config_; }
    std::string ns_a() const { return config_.name + "-a"; }
    std::string ns_b() const { return config_.name + "-b"; }
    size_t paths() const { return config_.paths.size(); }
    std::string device(size_t path) const;     // the same name in both namespaces
    std::string address_a(size_t path) const;  // "10.201.0.1"
    std::string address_b(size_t path) const;  // "10.201.0.2"
    PathStats stats(size_t path) const;
    double seconds_up() const;
    // Outages count from now on (WanConfig::outage_clock_on_signal); once.
    void start_outage_clock();

    // Namespaces, addresses, shapes: what the ready file holds.
    nlohmann::json describe() const;
    // Per path and direction, the DirectionStats fields.
    nlohmann::json counters() const;

    // Deletes NAME-a and NAME-b if they exist (rmig-wan down). Refuses while
    // a live link of that name holds its lock.
    static void remove_stale(const std::string& name);

private:
    struct Path;
    void set_up_side(const NetNamespace& ns, bool side_a);

    WanConfig config_;
    std::optional<NameLock> lock_;
    // /proc/net/dev of each namespace, opened from inside it (a proc net file
    // keeps the namespace it was opened in), for the devices' drop counters.
    UniqueFd dev_stats_a_, dev_stats_b_;
    // Destroyed bottom-up: forwarders (inside paths_) stop before the TUN fds
    // close, and those close before the namespaces go.
    std::unique_ptr<NetNamespace> a_, b_;
    // Before the forwarders (so destroyed after them): they read it.
    std::atomic<int64_t> outage_clock_{PacketScheduler::kNotStarted};
    std::vector<std::unique_ptr<Path>> paths_;
    Nanos started_{0};
    int64_t started_unix_ms_ = 0;

};

}  // namespace rmig::wan
