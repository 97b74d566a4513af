// A TUN device (IFF_TUN | IFF_NO_PI: raw IP packets, no packet-info header)
// owned through its file descriptor: the device exists while the fd is open
// and goes away with it (not persistent), so no exit path can leave one
// behind.
#pragma once

#include <string>

#include "common/unique_fd.hpp"

namespace rmig::wan {

class TunDevice {
public:
    TunDevice() = default;
    // Creates device `name` in the calling thread's network namespace (the
    // one current when /dev/net/tun is opened), non-blocking. Throws Error
    // naming the device and the reason (no /dev/net/tun, no CAP_NET_ADMIN,
    // name taken).
    // With `offload`, packets carry a virtio_net_hdr in both directions and
    // the device takes and hands out IPv4 TSO packets with partial checksums
    // (IFF_VNET_HDR, TUNSETOFFLOAD; lab/wan/tcp_segments.hpp).
    explicit TunDevice(const std::string& name, bool offload = false);

    int fd() const { return fd_.get(); }
    const std::string& name() const { return name_; }
    bool valid() const { return fd_.valid(); }

private:
    UniqueFd fd_;
    std::string name_;
};

}  // namespace rmig::wan
