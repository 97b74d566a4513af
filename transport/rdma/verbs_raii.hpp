// Owning handles for libibverbs / librdmacm objects: each is released exactly
// once, in the reverse order of its members' declaration in the owner.
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <memory>

namespace rmig::transport::rdma {

struct EventChannelDeleter {
    void operator()(rdma_event_channel* c) const { rdma_destroy_event_channel(c); }
};
struct CmIdDeleter {
    void operator()(rdma_cm_id* id) const {
        if (id->qp) rdma_destroy_qp(id);
        rdma_destroy_id(id);
    }
};
struct PdDeleter {
    void operator()(ibv_pd* pd) const { ibv_dealloc_pd(pd); }
};
struct CompChannelDeleter {
    void operator()(ibv_comp_channel* c) const { ibv_destroy_comp_channel(c); }
};
struct CqDeleter {
    void operator()(ibv_cq* cq) const { ibv_destroy_cq(cq); }
};
struct MrDeleter {
    void operator()(ibv_mr* mr) const { ibv_dereg_mr(mr); }
};
struct CmEventDeleter {
    void operator()(rdma_cm_event* e) const { rdma_ack_cm_event(e); }
};

using EventChannel = std::unique_ptr<rdma_event_channel, EventChannelDeleter>;
using CmId = std::unique_ptr<rdma_cm_id, CmIdDeleter>;
using ProtectionDomain = std::unique_ptr<ibv_pd, PdDeleter>;
using CompChannel = std::unique_ptr<ibv_comp_channel, CompChannelDeleter>;
using CompletionQueue = std::unique_ptr<ibv_cq, CqDeleter>;
using MemoryRegion = std::unique_ptr<ibv_mr, MrDeleter>;
using CmEvent = std::unique_ptr<rdma_cm_event, CmEventDeleter>;

}  // namespace rmig::transport::rdma
