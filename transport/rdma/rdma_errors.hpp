// Turning verbs and rdma_cm failures into errors that say what to do.
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <string>

#include "common/unique_fd.hpp"
#include "transport/rdma/verbs_raii.hpp"

namespace rmig::transport::rdma {

// Throws Error if this machine has no usable RDMA device, saying how to get one.
void require_device();
EventChannel make_event_channel();
// ibv_reg_mr, with the memlock limit named when pinning fails.
MemoryRegion register_memory(ibv_pd* pd, void* addr, size_t len, int access, const std::string& what);
// Throws Error if the port under `id` is not ACTIVE.
void require_port_active(rdma_cm_id* id);
std::string device_name(rdma_cm_id* id);
// Next CM event within `timeout_ms`, or nullptr.
CmEvent next_cm_event(rdma_event_channel* ch, int timeout_ms);
std::string wc_error(const ibv_wc& wc);

}  // namespace rmig::transport::rdma
