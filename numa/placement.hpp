// Where rmig's worker threads run and where their staging buffers live.
//
// Policy (what plan() does, and what tests/numa/placement_test.cpp checks):
//
//  NIC node known (H):
//   1. Nodes are ranked by nearness to H: H first, then the others by the
//      topology's latency matrix (hwloc distances, ACPI SLIT); without one,
//      nodes in H's package first, then the rest, each group by OS index.
//   2. A node is filled completely before the next one is touched, because
//      every packet crosses the NIC's node: a sibling hyperthread there beats
//      a whole core one interconnect hop away.
//   3. Within a node: one PU of each physical core first (cores in hwloc's
//      order), then the second PU of each core, and so on.
//   4. Buffers (staging buffers, queues) go on H, where the NIC DMAs.
//
//  NIC node unknown: nothing ties work to one node, so workers are spread
//   round-robin over the nodes in OS-index order starting at node 0 (node 0,
//   node 1, ..., node 0, ...), taking one PU per core on every node before
//   any hyperthread sibling. Shared buffers go on node 0; each worker's node is
//   in WorkerSlot::node for per-worker buffers.
//
//  More workers than PUs: the sequence wraps around (worker N reuses the PU of
//   worker N - PUs), and the placement carries a warning (also logged).
//
//  Nodes without PUs (memory-only: HBM, CXL) never get workers.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "numa/topology.hpp"

namespace rmig::numa {

struct WorkerSlot {
    unsigned worker = 0;
    int pu = -1;           // OS index, what pin_current_thread() takes
    int core = -1;         // logical index of its core
    int node = -1;         // OS index of its NUMA node
    bool sibling = false;  // shares its core with an earlier worker (hyperthread)
    bool shared = false;   // shares its PU with an earlier worker (more workers than PUs)
};

struct Placement {
    std::optional<int> nic_node;
    int buffer_node = -1;         // where shared buffers and queues go
    std::vector<int> node_order;  // nodes in the order they were used/considered
    bool used_distances = false;  // ranked by the latency matrix (else by package)
    std::vector<WorkerSlot> workers;
    std::vector<std::string> warnings;

    std::string explain() const;  // multi-line, for people
    nlohmann::json to_json() const;
};

// Throws Error when workers is 0, nic_node is not a node of topo, or topo has no PU.
Placement plan(const Topology& topo, std::optional<int> nic_node, unsigned workers);

}  // namespace rmig::numa
