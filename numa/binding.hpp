// Putting threads and memory where a Placement says, on this machine.
#pragma once

#include <cstddef>

namespace rmig::numa {

// Pins the calling thread to one PU (OS index, as in WorkerSlot::pu). Throws
// Error naming the PU and why (not in this process's allowed CPUs, offline...).
void pin_current_thread(int pu);

// `bytes` of page-aligned memory bound to NUMA node `node` of this machine.
// Where binding is unsupported or refused (no NUMA support, a container
// without mbind), falls back to plain memory, logs a warning once per process,
// and sets *bound to false. Throws Error when the node does not exist or
// memory is exhausted. Release with free_on_node(p, bytes).
void* alloc_on_node(std::size_t bytes, int node, bool* bound = nullptr);
void free_on_node(void* p, std::size_t bytes) noexcept;

// Owner of one alloc_on_node() allocation.
class NodeBuffer {
public:
    NodeBuffer() = default;
    NodeBuffer(std::size_t bytes, int node);
    NodeBuffer(NodeBuffer&& other) noexcept;
    NodeBuffer& operator=(NodeBuffer&& other) noexcept;
    NodeBuffer(const NodeBuffer&) = delete;
    NodeBuffer& operator=(const NodeBuffer&) = delete;
    ~NodeBuffer();

    void* data() const { return data_; }
    std::size_t size() const { return size_; }
    int node() const { return node_; }
    bool bound() const { return bound_; }  // false: plain memory (binding unsupported)

private:
    void* data_ = nullptr;
    std::size_t size_ = 0;
    int node_ = -1;
    bool bound_ = false;
};

// Node holding the page at `p` once touched (for checks and diagnostics);
// -1 when the kernel will not say.
int node_of_memory(const void* p, std::size_t bytes);

}  // namespace rmig::numa
