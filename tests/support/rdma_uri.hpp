// Where memory-mode tests listen over rdma: the VM's Soft-RoCE address
// (RMIG_RDMA_ADDR overrides it), or empty on a machine without an RDMA
// device (or a build without rdma), where those cases skip.
#pragma once

#include <cstdlib>
#include <string>

#include "common/error.hpp"

#ifdef RMIG_HAVE_RDMA
#include <infiniband/verbs.h>
#endif

namespace rmig::test {

inline std::string rdma_test_uri() {
#ifdef RMIG_HAVE_RDMA
    int devices = 0;
    if (ibv_device** l = ibv_get_device_list(&devices)) ibv_free_device_list(l);
    if (devices > 0) {
        const char* addr = std::getenv("RMIG_RDMA_ADDR");
        return cat("rdma:", addr ? addr : "10.11.12.1", ":0");
    }
#endif
    return {};
}

}  // namespace rmig::test
