// IPv4 subnets of the emulated paths, and setting up an interface (MTU,
// address, up) in the calling thread's network namespace with ioctls, so
// each failure says which device and which step.
#pragma once

#include <cstdint>
#include <string>

namespace rmig::wan {

struct Ipv4Subnet {
    uint32_t network = 0;  // host order, host bits zero
    unsigned prefix = 24;

    // "10.201.0.0/24". Throws UsageError naming `what`; the prefix must leave
    // room for hosts .1 and .2.
    static Ipv4Subnet parse(const std::string& text, const std::string& what);
    std::string host(uint32_t n) const;  // host(1) = "10.201.0.1"
    std::string text() const;            // "10.201.0.0/24"
    bool overlaps(const Ipv4Subnet& o) const;
};

// MTU, transmit queue length (0: leave it), address/prefix, then up. Throws
// Error naming the device and the step.
void configure_interface(const std::string& device, const std::string& address, unsigned prefix, unsigned mtu,
                         unsigned txqueuelen = 0);
void set_interface_up(const std::string& device);

}  // namespace rmig::wan
