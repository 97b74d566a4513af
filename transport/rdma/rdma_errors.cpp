#include "transport/rdma/rdma_errors.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include "common/error.hpp"
#include "common/units.hpp"

namespace rmig::transport::rdma {

void require_device() {
    int n = 0;
    ibv_device** list = ibv_get_device_list(&n);
    if (list) ibv_free_device_list(list);
    if (n <= 0)
        throw Error("no RDMA device on this machine (ibv_devices lists none): use a host with an "
                    "InfiniBand/RoCE NIC, or set up Soft-RoCE: modprobe rdma_rxe; "
                    "rdma link add rxe0 type rxe netdev <ethX>");
}

EventChannel make_event_channel() {
    require_device();
    rdma_event_channel* ch = rdma_create_event_channel();
    if (!ch)
        throw_errno("rdma_create_event_channel (is the rdma_ucm module loaded? "
                    "/dev/infiniband/rdma_cm must exist)");
    int flags = ::fcntl(ch->fd, F_GETFL);
    ::fcntl(ch->fd, F_SETFL, flags | O_NONBLOCK);
    return EventChannel(ch);
}

MemoryRegion register_memory(ibv_pd* pd, void* addr, size_t len, int access, const std::string& what) {
    ibv_mr* mr = ibv_reg_mr(pd, addr, len, access);
    if (mr) return MemoryRegion(mr);
    int err = errno;
    rlimit rl{};
    ::getrlimit(RLIMIT_MEMLOCK, &rl);
    std::string limit = rl.rlim_cur == RLIM_INFINITY ? std::string("unlimited")
                                                     : format_bytes(double(rl.rlim_cur));
    if (err == ENOMEM || err == EPERM || err == EAGAIN)
        throw Error(cat("cannot register ", format_bytes(double(len)), " for ", what,
                        " with the RDMA device: ", std::strerror(err),
                        ". The locked-memory limit is ", limit,
                        "; raise it (ulimit -l unlimited, or memlock in /etc/security/limits.conf "
                        "or LimitMEMLOCK= for a systemd service)"));
    throw_errno(cat("ibv_reg_mr of ", format_bytes(double(len)), " for ", what), err);
}

std::string device_name(rdma_cm_id* id) {
    if (!id->verbs) return "?";
    return cat(ibv_get_device_name(id->verbs->device), " port ", unsigned(id->port_num));
}

void require_port_active(rdma_cm_id* id) {
    ibv_port_attr attr{};
    if (ibv_query_port(id->verbs, id->port_num, &attr) != 0)
        throw_errno(cat("ibv_query_port on ", device_name(id)));
    if (attr.state != IBV_PORT_ACTIVE)
        throw Error(cat("RDMA port ", device_name(id), " is ", ibv_port_state_str(attr.state),
                        ", not ACTIVE: check the cable/link (ibv_devinfo) or the netdev under rxe"));
}

CmEvent next_cm_event(rdma_event_channel* ch, int timeout_ms) {
    pollfd p{ch->fd, POLLIN, 0};
    for (;;) {
        rdma_cm_event* ev = nullptr;
        if (rdma_get_cm_event(ch, &ev) == 0) return CmEvent(ev);
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) throw_errno("rdma_get_cm_event");
        int rc = ::poll(&p, 1, timeout_ms);
        if (rc == 0) return nullptr;
        if (rc < 0 && errno != EINTR) throw_errno("poll on the rdma_cm event channel");
    }
}

std::string wc_error(const ibv_wc& wc) {
    std::string hint;
    switch (wc.status) {
    case IBV_WC_RETRY_EXC_ERR:
        hint = ": the peer stopped answering (host gone, process killed, or link down)";
        break;
    case IBV_WC_RNR_RETRY_EXC_ERR: hint = ": the peer had no receive posted (credit bug)"; break;
    case IBV_WC_REM_ACCESS_ERR:
        hint = ": the peer rejected the remote address or key (region not exposed, or out of bounds)";
        break;
    case IBV_WC_WR_FLUSH_ERR: hint = ": the queue pair was shut down"; break;
    default: break;
    }
    return cat("work completion failed: ", ibv_wc_status_str(wc.status), " (vendor error 0x", std::hex,
               wc.vendor_err, ")", hint);
}

}  // namespace rmig::transport::rdma
