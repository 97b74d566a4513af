// Memory registered with the DPDK EAL as external memory, so frames can carry
// it as external buffers without copying (DpdkChannel::send_zero_copy). The
// registration lasts as long as this object; destroying it waits (bounded) for
// every frame still referring to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace rmig::transport::dpdk {

class ExternalMemory {
public:
    // base and size must be multiples of the page size (e.g. an mmap). Needs the
    // EAL up: call after the first dpdk listen/connect, or pass eal_args.
    ExternalMemory(void* base, size_t size, size_t page_size = 4096);
    ~ExternalMemory();
    ExternalMemory(const ExternalMemory&) = delete;
    ExternalMemory& operator=(const ExternalMemory&) = delete;

    bool contains(const void* p, size_t n) const;
    uint64_t iova(const void* p) const;

    // The registered region holding [p, p+n), or nullptr.
    static ExternalMemory* find(const void* p, size_t n);

private:
    std::byte* base_;
    size_t size_;
    size_t page_;
    uint64_t iova_base_;
    std::vector<uint16_t> dma_mapped_ports_;
};

}  // namespace rmig::transport::dpdk
