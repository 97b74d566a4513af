// rte_dev_dma_map/unmap are still marked experimental in DPDK 22.11.
#define ALLOW_EXPERIMENTAL_API 1
#include "transport/dpdk/extmem.hpp"

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_memory.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "common/error.hpp"
#include "common/log.hpp"

namespace rmig::transport::dpdk {

namespace {
std::mutex g_mutex;
std::vector<ExternalMemory*> g_regions;
}  // namespace

ExternalMemory::ExternalMemory(void* base, size_t size, size_t page_size)
    : base_(static_cast<std::byte*>(base)), size_(size), page_(page_size) {
    if (rte_extmem_register(base, size, nullptr, 0, page_size) != 0)
        throw Error(cat("dpdk: registering ", size, " bytes at ", base,
                        " as external memory failed: ", rte_strerror(rte_errno),
                        " (needs the EAL initialised and page-aligned memory)"));
    rte_iova_t iova = rte_mem_virt2iova(base);
    iova_base_ = iova == RTE_BAD_IOVA ? reinterpret_cast<uintptr_t>(base) : iova;
    // Ports that DMA (PCI NICs) must map the memory; virtual devices copy and say ENOTSUP.
    for (uint16_t p = 0; p < RTE_MAX_ETHPORTS; ++p) {
        rte_eth_dev_info info{};
        if (!rte_eth_dev_is_valid_port(p) || rte_eth_dev_info_get(p, &info) != 0 || !info.device)
            continue;
        if (rte_dev_dma_map(info.device, base, iova_base_, size) == 0) dma_mapped_ports_.push_back(p);
    }
    rte_errno = 0;
    std::lock_guard lock(g_mutex);
    g_regions.push_back(this);
}

ExternalMemory::~ExternalMemory() {
    {
        std::lock_guard lock(g_mutex);
        g_regions.erase(std::remove(g_regions.begin(), g_regions.end(), this), g_regions.end());
    }
    for (uint16_t p : dma_mapped_ports_) {
        rte_eth_dev_info info{};
        if (rte_eth_dev_is_valid_port(p) && rte_eth_dev_info_get(p, &info) == 0 && info.device)
            rte_dev_dma_unmap(info.device, base_, iova_base_, size_);
    }
    if (rte_extmem_unregister(base_, size_) != 0)
        log::warn("dpdk: unregistering external memory at ", static_cast<void*>(base_), ": ",
                  rte_strerror(rte_errno));
}

bool ExternalMemory::contains(const void* p, size_t n) const {
    auto* b = static_cast<const std::byte*>(p);
    return b >= base_ && b + n <= base_ + size_;
}

uint64_t ExternalMemory::iova(const void* p) const {
    return iova_base_ + static_cast<uint64_t>(static_cast<const std::byte*>(p) - base_);
}

ExternalMemory* ExternalMemory::find(const void* p, size_t n) {
    std::lock_guard lock(g_mutex);
    for (auto* r : g_regions)
        if (r->contains(p, n)) return r;
    return nullptr;
}

}  // namespace rmig::transport::dpdk
