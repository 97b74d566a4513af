#include "lab/wan/interface_config.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "common/args.hpp"
#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace rmig::wan {

namespace {

uint32_t mask_of(unsigned prefix) {
    return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
}

std::string dotted(uint32_t host_order) {
    in_addr a{htonl(host_order)};
    char buf[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &a, buf, sizeof buf);
    return buf;
}

ifreq request(const std::string& device) {
    ifreq ifr{};
    if (device.empty() || device.size() >= IFNAMSIZ) throw Error(cat("interface '", device, "': bad name"));
    std::memcpy(ifr.ifr_name, device.data(), device.size());
    return ifr;
}

void set_ipv4(ifreq& ifr, uint32_t host_order) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(host_order);
    std::memcpy(&ifr.ifr_addr, &sin, sizeof sin);
}

UniqueFd control_socket(const std::string& device) {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) throw_errno(cat("interface ", device, ": socket"));
    return s;
}

}  // namespace

Ipv4Subnet Ipv4Subnet::parse(const std::string& text, const std::string& what) {
    const std::string hint = cat(what, " '", text, "': give an IPv4 subnet like 10.201.0.0/24 (prefix 8 to 30)");
    auto slash = text.find('/');
    if (slash == std::string::npos) throw UsageError(hint);
    in_addr a{};
    if (::inet_pton(AF_INET, text.substr(0, slash).c_str(), &a) != 1) throw UsageError(hint);
    std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 2 || p.find_first_not_of("0123456789") != std::string::npos) throw UsageError(hint);
    unsigned prefix = static_cast<unsigned>(std::stoul(p));
    if (prefix < 8 || prefix > 30) throw UsageError(hint);
    Ipv4Subnet s;
    s.prefix = prefix;
    s.network = ntohl(a.s_addr) & mask_of(prefix);
    return s;
}

std::string Ipv4Subnet::host(uint32_t n) const {
    return dotted(network | n);
}
std::string Ipv4Subnet::text() const {
    return cat(dotted(network), "/", prefix);
}

bool Ipv4Subnet::overlaps(const Ipv4Subnet& o) const {
    uint32_t m = mask_of(std::min(prefix, o.prefix));
    return (network & m) == (o.network & m);
}

void set_interface_up(const std::string& device) {
    UniqueFd s = control_socket(device);
    ifreq ifr = request(device);
    if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) throw_errno(cat("interface ", device, ": SIOCGIFFLAGS"));
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) < 0) throw_errno(cat("interface ", device, ": bringing it up"));
}

void configure_interface(const std::string& device, const std::string& address, unsigned prefix, unsigned mtu,
                         unsigned txqueuelen) {
    UniqueFd s = control_socket(device);
    ifreq ifr = request(device);
    ifr.ifr_mtu = static_cast<int>(mtu);
    if (::ioctl(s.get(), SIOCSIFMTU, &ifr) < 0) throw_errno(cat("interface ", device, ": MTU ", mtu));
    if (txqueuelen) {
        ifr = request(device);
        ifr.ifr_qlen = static_cast<int>(txqueuelen);
        if (::ioctl(s.get(), SIOCSIFTXQLEN, &ifr) < 0)
            throw_errno(cat("interface ", device, ": txqueuelen ", txqueuelen));
    }
    in_addr a{};
    if (::inet_pton(AF_INET, address.c_str(), &a) != 1)
        throw Error(cat("interface ", device, ": bad address ", address));
    ifr = request(device);
    set_ipv4(ifr, ntohl(a.s_addr));
    if (::ioctl(s.get(), SIOCSIFADDR, &ifr) < 0) throw_errno(cat("interface ", device, ": address ", address));
    ifr = request(device);
    set_ipv4(ifr, mask_of(prefix));
    if (::ioctl(s.get(), SIOCSIFNETMASK, &ifr) < 0) throw_errno(cat("interface ", device, ": prefix /", prefix));
    set_interface_up(device);
}

}  // namespace rmig::wan
