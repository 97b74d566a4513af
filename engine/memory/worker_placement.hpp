// Where memory-mode worker threads run and where their staging buffers live
// (numa/ does the topology and the placement policy; this picks its input).
//
// Choice, in order:
//   1. the NIC's node, when a NIC is named (PCI address or device name) and
//      the topology knows its locality: every page crosses it;
//   2. else the node that holds the guest memory (its first pages): the
//      workers read (source) or write (destination) every page there;
//   3. else no node: numa::plan spreads workers round-robin from node 0.
// On a machine with one node holding PUs nothing is pinned or bound (the
// kernel's scheduler does as well there, and a shared box is not ours to
// carve up): the plan is still reported, with "not applied".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/memory/memory_layout.hpp"
#include "numa/placement.hpp"
#include "numa/topology.hpp"

namespace rmig::engine {

struct WorkerPlacement {
    std::optional<numa::Placement> plan;  // none when the topology could not be read
    bool apply = false;                   // pin workers and bind their buffers (several nodes)
    std::string basis;                    // why this node: "NIC mlx5_0 on node 1", "memory on node 0", ...

    int pu_of(unsigned worker) const;     // -1: do not pin
    int node_of(unsigned worker) const;   // -1: plain memory
    std::string summary() const;          // one line for results and logs
};

// The choice on a given topology; `memory_node` is where the memory sits
// (nullopt: unknown). Pure: tests feed hwloc synthetic and XML topologies.
WorkerPlacement choose_worker_placement(const numa::Topology& topo, const std::string& nic,
                                        std::optional<int> memory_node, unsigned workers);

// On this machine, for these regions. Never throws: a topology that cannot be
// read gives no plan, and summary() says why.
WorkerPlacement place_workers(const std::string& nic, const std::vector<Region>& regions, unsigned workers);

// Pins the calling worker thread where `p` says (no-op unless p.apply). A
// refusal (a PU outside this process's cpuset) is logged once, not fatal.
void pin_worker(const WorkerPlacement& p, unsigned worker);

}  // namespace rmig::engine
