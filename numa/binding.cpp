#include "numa/binding.hpp"

#include <hwloc.h>
#include <sched.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "common/error.hpp"
#include "common/log.hpp"
#include "numa/hwloc_handles.hpp"

namespace rmig::numa {

namespace {

// This machine's topology, without IO devices (memory binding needs only
// nodes), loaded once: binding calls are thread-safe on an unmodified topology.
hwloc_topology_t machine_topology() {
    static const std::unique_ptr<hwloc_topology, void (*)(hwloc_topology_t)> topo = [] {
        hwloc_topology_t t = nullptr;
        if (hwloc_topology_init(&t) != 0) throw_errno("hwloc: initialising this machine's topology");
        try {
            detail::exclude_unneeded_components(t);
        } catch (...) {
            hwloc_topology_destroy(t);
            throw;
        }
        if (hwloc_topology_load(t) != 0) {
            const int err = errno;
            hwloc_topology_destroy(t);
            throw_errno("hwloc: loading this machine's topology", err);
        }
        return std::unique_ptr<hwloc_topology, void (*)(hwloc_topology_t)>(t, hwloc_topology_destroy);
    }();
    return topo.get();
}

void warn_unbound_once(const std::string& why) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
        log::warn("numa: memory is not bound to NUMA nodes (", why, "); buffers use plain memory");
}

}  // namespace

void pin_current_thread(int pu) {
    if (pu < 0) throw Error(cat("numa: cannot pin to PU ", pu, ": not a PU number"));
    const size_t count = static_cast<size_t>(pu) + 1;
    auto free_set = [](cpu_set_t* s) { CPU_FREE(s); };  // CPU_FREE is a macro
    std::unique_ptr<cpu_set_t, decltype(free_set)> set(CPU_ALLOC(static_cast<int>(count)), free_set);
    if (!set) throw Error(cat("numa: cannot pin to PU ", pu, ": out of memory"));
    const size_t size = CPU_ALLOC_SIZE(static_cast<int>(count));
    CPU_ZERO_S(size, set.get());
    CPU_SET_S(static_cast<size_t>(pu), size, set.get());
    if (sched_setaffinity(0, size, set.get()) != 0) {
        const int err = errno;
        if (err == EINVAL)
            throw Error(cat("numa: cannot pin thread to PU ", pu,
                            ": not among the CPUs this process may use (offline, or outside its cpuset)"));
        throw_errno(cat("numa: pinning thread to PU ", pu), err);
    }
}

void* alloc_on_node(std::size_t bytes, int node, bool* bound) {
    if (bound) *bound = false;
    if (bytes == 0) throw Error(cat("numa: allocating 0 bytes on node ", node));
    hwloc_topology_t t = machine_topology();
    if (node < 0 || !hwloc_get_numanode_obj_by_os_index(t, static_cast<unsigned>(node)))
        throw Error(cat("numa: allocating ", bytes, " bytes on node ", node, ": this machine has no such node"));

    const hwloc_topology_support* support = hwloc_topology_get_support(t);
    if (support->membind->alloc_membind && support->membind->bind_membind) {
        detail::Bitmap nodeset = detail::make_bitmap();
        hwloc_bitmap_only(nodeset.get(), static_cast<unsigned>(node));
        // STRICT: fail rather than let hwloc silently hand back unbound memory,
        // so that we can say so.
        void* p = hwloc_alloc_membind(t, bytes, nodeset.get(), HWLOC_MEMBIND_BIND,
                                      HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_STRICT);
        if (p) {
            if (bound) *bound = true;
            return p;
        }
        const int err = errno;
        if (err == ENOMEM) throw_errno(cat("numa: allocating ", bytes, " bytes on node ", node), err);
        warn_unbound_once(cat("binding to node ", node, " failed: ", std::strerror(err)));
    } else {
        warn_unbound_once("this system does not support memory binding");
    }
    void* p = hwloc_alloc(t, bytes);
    if (!p) throw_errno(cat("numa: allocating ", bytes, " bytes (unbound)"));
    return p;
}

void free_on_node(void* p, std::size_t bytes) noexcept {
    // hwloc_free matches both hwloc_alloc_membind and hwloc_alloc.
    if (p) hwloc_free(machine_topology(), p, bytes);
}

NodeBuffer::NodeBuffer(std::size_t bytes, int node) : size_(bytes), node_(node) {
    // In the body: bound_'s default initialiser runs after data_'s, so it
    // would overwrite what alloc_on_node() reported.
    data_ = alloc_on_node(bytes, node, &bound_);
}

NodeBuffer::NodeBuffer(NodeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      node_(std::exchange(other.node_, -1)),
      bound_(std::exchange(other.bound_, false)) {}

NodeBuffer& NodeBuffer::operator=(NodeBuffer&& other) noexcept {
    if (this != &other) {
        free_on_node(data_, size_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        node_ = std::exchange(other.node_, -1);
        bound_ = std::exchange(other.bound_, false);
    }
    return *this;
}

NodeBuffer::~NodeBuffer() { free_on_node(data_, size_); }

int node_of_memory(const void* p, std::size_t bytes) {
    hwloc_topology_t t = machine_topology();
    detail::Bitmap nodes = detail::make_bitmap();
    if (hwloc_get_area_memlocation(t, p, bytes, nodes.get(), HWLOC_MEMBIND_BYNODESET) != 0) return -1;
    const int first = hwloc_bitmap_first(nodes.get());
    return first;
}

}  // namespace rmig::numa
