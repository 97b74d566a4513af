// The Channel conformance suite over rdma/ (Soft-RoCE in the test VM, booted
// by tests/rdma/vm/run-in-vm.sh, or RDMA hardware), plain and with security/
// on (sealed straight into the registered ring slots). RMIG_RDMA_ADDR names
// the IP of the device's interface (the VM's rxe0 sits on 10.11.12.1).
// Without an RDMA device every case skips, saying why.
#include <infiniband/verbs.h>

#include <cstdlib>

#include "tests/transport/conformance/channel_conformance.hpp"
#include "tests/transport/conformance/secured_link.hpp"

namespace rmig::test::conformance {
namespace {

std::string device_addr() {
    const char* a = std::getenv("RMIG_RDMA_ADDR");
    return a ? a : "10.11.12.1";
}

std::string no_device() {
    int n = 0;
    if (ibv_device** l = ibv_get_device_list(&n)) ibv_free_device_list(l);
    // Inside the Soft-RoCE VM (RMIG_VM, set by guest-init.sh) the device must
    // be there: never skip, let the cases fail on it.
    if (std::getenv("RMIG_VM")) return "";
    return n > 0 ? "" : "no RDMA device on this machine; this suite runs inside the Soft-RoCE VM "
                        "(ctest channel_conformance_in_softroce_vm) or on RDMA hardware";
}

std::unique_ptr<Link> rdma_link() {
    auto link = std::make_unique<Link>();
    link->listener = transport::listen("rdma:" + device_addr() + ":0");
    link->connect_uri = link->listener->address();
    return link;
}

ChannelPairFactory rdma() {
    return {.name = "rdma", .make = rdma_link, .unavailable = no_device, .one_sided = true, .fills_in_place = true,
            .recv_into_is_direct = true};
}

ChannelPairFactory secured_rdma() {
    return {.name = "secured_rdma",
            .make = [] { return secured_link("rdma:" + device_addr() + ":0"); },
            .unavailable = no_device,
            .no_one_sided = kSecuredHasNoOneSided};
}

}  // namespace

INSTANTIATE_CHANNEL_CONFORMANCE(rdma, rdma());
INSTANTIATE_CHANNEL_CONFORMANCE(secured, secured_rdma());

}  // namespace rmig::test::conformance
