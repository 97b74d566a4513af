// RAII owners for hwloc objects, shared by the numa/ sources. Internal: callers
// of rmig_numa use Topology and never see hwloc types.
#pragma once

#include <hwloc.h>

#include <memory>

#include "common/error.hpp"

namespace rmig::numa::detail {

struct BitmapDeleter {
    void operator()(hwloc_bitmap_s* b) const noexcept { hwloc_bitmap_free(b); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapDeleter>;

inline Bitmap make_bitmap() {
    Bitmap b(hwloc_bitmap_alloc());
    if (!b) throw Error("hwloc: out of memory allocating a bitmap");
    return b;
}

// Keeps hwloc to what rmig needs (Linux's own CPU, memory and PCI
// discovery) before hwloc_topology_load: without libhwloc-plugins'
// "pci", "opencl" and "gl" components (topology.cpp says why).
void exclude_unneeded_components(hwloc_topology_t t);

}  // namespace rmig::numa::detail
