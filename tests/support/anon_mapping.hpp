// Anonymous private memory for tests that migrate "guest" memory: mmap'd
// rather than new'd so it is page-aligned and uffd-wp can track it.
#pragma once

#include <sys/mman.h>

#include <cstddef>

#include "common/error.hpp"

namespace rmig::test {

class AnonMapping {
public:
    explicit AnonMapping(size_t size) : size_(size) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw_errno(cat("mmap of ", size, " bytes"));
        p_ = static_cast<std::byte*>(p);
    }
    ~AnonMapping() { ::munmap(p_, size_); }
    AnonMapping(const AnonMapping&) = delete;
    AnonMapping& operator=(const AnonMapping&) = delete;

    std::byte* data() const { return p_; }
    size_t size() const { return size_; }

private:
    std::byte* p_;
    size_t size_;
};

}  // namespace rmig::test
