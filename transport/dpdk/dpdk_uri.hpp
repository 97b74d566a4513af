// The text after "dpdk:" in a transport URI: DPDK device arguments naming the
// port, plus rmig.* options of our own (docs/dpdk-protocol.md). Pure C++.
#pragma once

#include <string>

#include "transport/channel.hpp"

namespace rmig::transport::dpdk {

struct DpdkUri {
    std::string devargs;     // "net_memif0,role=server,socket=/tmp/s" or "0000:3b:00.0"
    std::string port_name;   // devargs up to the first comma
    std::string peer_mac;    // rmig.peer=aa:bb:cc:dd:ee:ff; empty: broadcast, then learned
    DpdkOptions opts;        // Options::dpdk with rmig.* applied
    bool is_vdev() const { return port_name.rfind("net_", 0) == 0; }
};

// Throws Error naming the bad option. Keys: rmig.window, rmig.gbps, rmig.rtt_us,
// rmig.pace_gbps, rmig.mtu, rmig.loss (fraction, e.g. 0.01),
// rmig.queues (queue pairs, 1..16), rmig.peer.
DpdkUri parse_uri(const std::string& rest, const DpdkOptions& defaults);

}  // namespace rmig::transport::dpdk
