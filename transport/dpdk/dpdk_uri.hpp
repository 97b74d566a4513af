// The text after "dpdk:" in a transport URI: DPDK device arguments naming the
// port, plus rmig.* options of our own (docs/dpdk-protocol.md). Pure C++.
#pragma once

#include <string>

#include "transport/dpdk/dpdk_backend.hpp"

namespace rmig::transport::dpdk {

struct DpdkUri {
    std::string devargs;     // "net_memif0,role=server,socket=/tmp/s" or "0000:3b:00.0"
    std::string port_name;   // devargs up to the first comma
    std::string peer_mac;    // rmig.peer=aa:bb:cc:dd:ee:ff; empty: broadcast, then learned
    DpdkOptions opts;        // dpdk_options() of the tuning with rmig.* applied
    bool is_vdev() const { return port_name.rfind("net_", 0) == 0; }
};

// `tuning` (Options::tuning) overridden by the URI's rmig.* options. Throws
// Error naming the bad option. Keys: the numeric options of the backend's
// table (dpdk_backend.cpp), "dpdk-" dropped and '-' as '_', with its ranges:
// rmig.window, rmig.gbps, rmig.rtt_us, rmig.mtu (0, or 128 and up),
// rmig.queues (queue pairs, 1..16); and the URI's own: rmig.pace_gbps,
// rmig.loss (fraction, e.g. 0.01), rmig.peer.
DpdkUri parse_uri(const std::string& rest, const BackendSettings& tuning);

}  // namespace rmig::transport::dpdk
