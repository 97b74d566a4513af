#include "lab/wan/tun_device.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "common/error.hpp"
#include "lab/wan/tcp_segments.hpp"

namespace rmig::wan {

TunDevice::TunDevice(const std::string& name, bool offload) : name_(name) {
    if (name.empty() || name.size() >= IFNAMSIZ)
        throw Error(cat("TUN device '", name, "': a name of 1 to ", IFNAMSIZ - 1, " characters is needed"));
    fd_ = UniqueFd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd_) {
        int err = errno;
        throw_errno(cat("TUN device ", name, ": open /dev/net/tun",
                        err == ENOENT ? " (no TUN support: modprobe tun, or a container without /dev/net/tun)" : ""),
                    err);
    }
    ifreq ifr{};
    ifr.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0));
    std::memcpy(ifr.ifr_name, name.data(), name.size());
    if (::ioctl(fd_.get(), TUNSETIFF, &ifr) < 0) {
        int err = errno;
        throw_errno(cat("TUN device ", name, ": TUNSETIFF",
                        err == EPERM   ? " (needs CAP_NET_ADMIN)"
                        : err == EBUSY ? " (the name is taken)"
                                       : ""),
                    err);
    }
    if (offload) {
        int hdr = static_cast<int>(kVnetHdrLen);
        if (::ioctl(fd_.get(), TUNSETVNETHDRSZ, &hdr) < 0) throw_errno(cat("TUN device ", name, ": TUNSETVNETHDRSZ"));
        // IPv4 TSO only: tcp_segments.hpp cuts IPv4/TCP; IPv6 (off on these
        // devices anyway) and UDP are segmented by the sender's kernel.
        unsigned long features = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN;
        if (::ioctl(fd_.get(), TUNSETOFFLOAD, features) < 0) throw_errno(cat("TUN device ", name, ": TUNSETOFFLOAD"));
    }
}

}  // namespace rmig::wan
