#include "numa/placement.hpp"

#include <algorithm>
#include <set>
#include <sstream>
#include <tuple>

#include "common/error.hpp"
#include "common/log.hpp"

namespace rmig::numa {

namespace {

// Nodes ranked by nearness to `home` (see the policy in placement.hpp).
std::vector<int> rank_nodes(const Topology& topo, int home, bool& used_distances) {
    used_distances = topo.has_distances();
    std::vector<int> others;
    for (const Node& n : topo.nodes()) {
        if (n.os_index == home) continue;
        others.push_back(n.os_index);
        if (!topo.distance(home, n.os_index)) used_distances = false;
    }
    const int home_pkg = topo.node(home).package;
    auto key = [&](int n) {
        if (used_distances) return std::tuple(*topo.distance(home, n), n);
        const std::uint64_t other_pkg = topo.node(n).package == home_pkg ? 0 : 1;
        return std::tuple(other_pkg, n);
    };
    std::stable_sort(others.begin(), others.end(), [&](int a, int b) { return key(a) < key(b); });
    others.insert(others.begin(), home);
    return others;
}

size_t max_pus_per_core(const std::vector<Core>& cores) {
    size_t m = 0;
    for (const Core& c : cores) m = std::max(m, c.pus.size());
    return m;
}

// The order PUs are handed out in. Each PU appears once even when nodes
// overlap (a core can sit in a DDR node and an HBM node with the same cpuset).
class Sequence {
public:
    void add(const Core& core, size_t pu_rank) {
        const int pu = core.pus[pu_rank];
        if (!seen_pus_.insert(pu).second) return;
        const bool sibling = !seen_cores_.insert(core.logical_index).second;
        slots_.push_back(WorkerSlot{0, pu, core.logical_index, core.node, sibling, false});
    }
    const std::vector<WorkerSlot>& slots() const { return slots_; }

private:
    std::set<int> seen_pus_;
    std::set<int> seen_cores_;
    std::vector<WorkerSlot> slots_;
};

// Known NIC node: fill each node completely, nearest first; per node, one PU
// per core before siblings.
Sequence fill_nearest_first(const Topology& topo, const std::vector<int>& order) {
    Sequence seq;
    for (int node : order) {
        const std::vector<Core> cores = topo.cores_of_node(node);
        const size_t ranks = max_pus_per_core(cores);
        for (size_t r = 0; r < ranks; ++r)
            for (const Core& c : cores)
                if (r < c.pus.size()) seq.add(c, r);
    }
    return seq;
}

// Unknown NIC node: round-robin over nodes, core by core; all first PUs of
// every node before any sibling.
Sequence spread_round_robin(const Topology& topo, const std::vector<int>& order) {
    std::vector<std::vector<Core>> per_node;
    size_t ranks = 0, most_cores = 0;
    for (int node : order) {
        per_node.push_back(topo.cores_of_node(node));
        ranks = std::max(ranks, max_pus_per_core(per_node.back()));
        most_cores = std::max(most_cores, per_node.back().size());
    }
    Sequence seq;
    for (size_t r = 0; r < ranks; ++r)
        for (size_t k = 0; k < most_cores; ++k)
            for (const std::vector<Core>& cores : per_node)
                if (k < cores.size() && r < cores[k].pus.size()) seq.add(cores[k], r);
    return seq;
}

std::string join(const std::vector<int>& v) {
    std::ostringstream out;
    for (size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
    return out.str();
}

}  // namespace

Placement plan(const Topology& topo, std::optional<int> nic_node, unsigned workers) {
    if (workers == 0) throw Error("numa placement: at least one worker is needed");
    if (topo.nodes().empty()) throw Error(cat("numa placement: ", topo.source(), " has no NUMA node"));
    if (nic_node && !topo.has_node(*nic_node))
        throw Error(cat("numa placement: the NIC's node ", *nic_node, " is not a node of ", topo.source()));

    Placement p;
    p.nic_node = nic_node;
    Sequence seq;
    if (nic_node) {
        p.node_order = rank_nodes(topo, *nic_node, p.used_distances);
        p.buffer_node = *nic_node;
        seq = fill_nearest_first(topo, p.node_order);
        if (topo.node(*nic_node).pus.empty())
            p.warnings.push_back(cat("the NIC's node ", *nic_node, " has no PUs: all workers run on other nodes"));
    } else {
        for (const Node& n : topo.nodes()) p.node_order.push_back(n.os_index);
        seq = spread_round_robin(topo, p.node_order);
    }
    const std::vector<WorkerSlot>& slots = seq.slots();
    if (slots.empty()) throw Error(cat("numa placement: ", topo.source(), " has no PU to run workers on"));
    // Unknown NIC: the first worker's node (node 0 unless it has no PUs).
    if (!nic_node) p.buffer_node = slots.front().node;

    if (workers > slots.size()) {
        const size_t first_shared = slots.size();
        p.warnings.push_back(cat(workers, " workers but only ", slots.size(), " PUs: ",
                                 workers - 1 == first_shared ? cat("worker ", first_shared, " shares a PU")
                                                             : cat("workers ", first_shared, "..", workers - 1, " share PUs"),
                                 " with earlier workers"));
    }
    for (unsigned i = 0; i < workers; ++i) {
        WorkerSlot s = slots[i % slots.size()];
        s.worker = i;
        s.shared = i >= slots.size();
        p.workers.push_back(s);
    }
    for (const std::string& w : p.warnings) log::warn("numa placement: ", w);
    return p;
}

std::string Placement::explain() const {
    std::ostringstream out;
    if (nic_node) {
        out << "NIC on node " << *nic_node << "; buffers and queues on node " << buffer_node << "\n";
        out << "nodes by nearness to the NIC: " << join(node_order) << " ("
            << (used_distances ? "latency matrix" : "no latency matrix: same package first, then by number")
            << ")\n";
    } else {
        out << "NIC node unknown: workers spread round-robin over nodes " << join(node_order)
            << "; shared buffers on node " << buffer_node << "\n";
    }
    size_t siblings = 0, shared = 0, remote = 0;
    for (const WorkerSlot& w : workers) {
        out << "  worker " << w.worker << " -> PU " << w.pu << " (core L#" << w.core << ", node " << w.node;
        if (w.sibling) out << ", hyperthread sibling";
        if (w.shared) out << ", shared PU";
        out << ")\n";
        siblings += w.sibling ? 1 : 0;
        shared += w.shared ? 1 : 0;
        remote += nic_node && w.node != *nic_node ? 1 : 0;
    }
    out << workers.size() << " worker" << (workers.size() == 1 ? "" : "s") << ": "
        << workers.size() - siblings - shared << " on cores of their own, " << siblings
        << " on hyperthread siblings, " << shared << " sharing a PU";
    if (nic_node) out << "; " << remote << " off the NIC's node";
    out << "\n";
    for (const std::string& w : warnings) out << "warning: " << w << "\n";
    return out.str();
}

nlohmann::json Placement::to_json() const {
    nlohmann::json j;
    j["nic_node"] = nic_node ? nlohmann::json(*nic_node) : nlohmann::json(nullptr);
    j["buffer_node"] = buffer_node;
    j["node_order"] = node_order;
    j["ranked_by"] = !nic_node ? "round_robin" : used_distances ? "distances" : "package";
    j["workers"] = nlohmann::json::array();
    for (const WorkerSlot& w : workers) {
        j["workers"].push_back({{"worker", w.worker},
                                {"pu", w.pu},
                                {"core", w.core},
                                {"node", w.node},
                                {"sibling", w.sibling},
                                {"shared", w.shared}});
    }
    j["warnings"] = warnings;
    return j;
}

}  // namespace rmig::numa
