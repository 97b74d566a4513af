#include "engine/memory/worker_placement.hpp"

#include <atomic>
#include <map>
#include <sstream>

#include "common/error.hpp"
#include "common/log.hpp"
#include "numa/binding.hpp"

namespace rmig::engine {

int WorkerPlacement::pu_of(unsigned worker) const {
    if (!apply || !plan || worker >= plan->workers.size()) return -1;
    return plan->workers[worker].pu;
}

int WorkerPlacement::node_of(unsigned worker) const {
    if (!apply || !plan || worker >= plan->workers.size()) return -1;
    return plan->workers[worker].node;
}

std::string WorkerPlacement::summary() const {
    std::ostringstream out;
    out << basis;
    if (!plan) return out.str();
    out << ": workers on PU";
    for (size_t i = 0; i < plan->workers.size(); ++i)
        out << (i ? "," : " ") << plan->workers[i].pu << "(node " << plan->workers[i].node << ")";
    out << ", buffers on node " << plan->buffer_node;
    if (!apply) out << " (one node: not applied)";
    for (const auto& w : plan->warnings) out << "; warning: " << w;
    return out.str();
}

WorkerPlacement choose_worker_placement(const numa::Topology& topo, const std::string& nic,
                                        std::optional<int> memory_node, unsigned workers) {
    WorkerPlacement wp;
    size_t nodes_with_pus = 0;
    for (const auto& n : topo.nodes()) nodes_with_pus += n.pus.empty() ? 0 : 1;
    wp.apply = nodes_with_pus > 1;

    std::optional<int> node;
    if (!nic.empty()) {
        numa::NicLocality loc = topo.locate_nic(nic);
        if (auto n = loc.node(); n && !topo.node(*n).pus.empty()) {
            node = n;
            wp.basis = cat("NIC ", nic, " on node ", *n);
        } else {
            wp.basis = cat("NIC ", nic, " locality unknown (", loc.detail, ")");
        }
    }
    if (!node && memory_node && topo.has_node(*memory_node) && !topo.node(*memory_node).pus.empty()) {
        node = memory_node;
        wp.basis += cat(wp.basis.empty() ? "" : "; ", "memory on node ", *memory_node);
    }
    if (!node) wp.basis += wp.basis.empty() ? "no NIC or memory node known" : "; no node known";
    // numa::plan ranks nodes by nearness to its first argument: the NIC's
    // node, or here the memory's, which plays the same part.
    wp.plan = numa::plan(topo, node, workers);
    return wp;
}

WorkerPlacement place_workers(const std::string& nic, const std::vector<Region>& regions, unsigned workers) {
    try {
        const numa::Topology topo = numa::Topology::machine();
        // The node of each region's first page; the one holding most bytes wins.
        std::map<int, size_t> bytes_on;
        for (const auto& r : regions) {
            int n = numa::node_of_memory(r.base, 4096);
            if (n >= 0) bytes_on[n] += r.size;
        }
        std::optional<int> memory_node;
        size_t most = 0;
        for (auto [n, b] : bytes_on)
            if (b > most) most = b, memory_node = n;
        return choose_worker_placement(topo, nic, memory_node, workers);
    } catch (const std::exception& e) {
        WorkerPlacement wp;
        wp.basis = cat("no placement (", e.what(), ")");
        return wp;
    }
}

void pin_worker(const WorkerPlacement& p, unsigned worker) {
    int pu = p.pu_of(worker);
    if (pu < 0) return;
    try {
        numa::pin_current_thread(pu);
    } catch (const std::exception& e) {
        static std::atomic<bool> said{false};
        if (!said.exchange(true)) log::warn("memory mode: worker ", worker, " not pinned: ", e.what());
    }
}

}  // namespace rmig::engine
