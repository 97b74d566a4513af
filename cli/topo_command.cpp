// `rmig topo`: what the NUMA layer sees on a machine and where it would put
// rmig's workers and buffers.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/topo_command.hpp"
#include "common/args.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "common/units.hpp"
#include "numa/placement.hpp"
#include "numa/topology.hpp"

using namespace rmig;
using namespace rmig::numa;

namespace {

struct Options {
    std::optional<std::string> nic, synthetic, xml;
    unsigned workers = 0;
    bool json = false;
};

// "0-15,32-47"
std::string ranges(const std::vector<int>& v) {
    std::string out;
    for (size_t i = 0; i < v.size();) {
        size_t j = i;
        while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
        if (!out.empty()) out += ",";
        out += j == i ? std::to_string(v[i]) : cat(v[i], "-", v[j]);
        i = j + 1;
    }
    return out.empty() ? "none" : out;
}

nlohmann::json to_json(const Topology& topo, const std::optional<std::string>& nic_name,
                       const std::optional<NicLocality>& nic, const Placement& p) {
    nlohmann::json j;
    j["source"] = topo.source();
    j["nodes"] = nlohmann::json::array();
    for (const Node& n : topo.nodes()) {
        j["nodes"].push_back({{"node", n.os_index},
                              {"package", n.package},
                              {"cores", topo.cores_of_node(n.os_index).size()},
                              {"pus", n.pus},
                              {"memory_bytes", n.memory_bytes}});
    }
    if (topo.has_distances()) {
        nlohmann::json m = nlohmann::json::array();
        for (const Node& a : topo.nodes()) {
            nlohmann::json row = nlohmann::json::array();
            for (const Node& b : topo.nodes()) {
                auto d = topo.distance(a.os_index, b.os_index);
                row.push_back(d ? nlohmann::json(*d) : nlohmann::json(nullptr));
            }
            m.push_back(row);
        }
        j["distances"] = m;
    } else {
        j["distances"] = nullptr;
    }
    j["net_devices"] = nlohmann::json::array();
    for (const NetDevice& d : topo.net_devices()) {
        const auto node = d.locality.node();
        j["net_devices"].push_back({{"name", d.name},
                                    {"kind", d.kind},
                                    {"pci", d.pci_bdf.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.pci_bdf)},
                                    {"node", node ? nlohmann::json(*node) : nlohmann::json(nullptr)},
                                    {"detail", d.locality.detail}});
    }
    if (nic) {
        const auto node = nic->node();
        j["nic"] = {{"name", *nic_name},
                    {"node", node ? nlohmann::json(*node) : nlohmann::json(nullptr)},
                    {"nodes", nic->nodes},
                    {"detail", nic->detail}};
    } else {
        j["nic"] = nullptr;
    }
    j["placement"] = p.to_json();
    return j;
}

void print_text(const Topology& topo, const std::optional<std::string>& nic_name,
                const std::optional<NicLocality>& nic, const Placement& p) {
    std::cout << "topology: " << topo.source() << "\n";
    std::cout << topo.nodes().size() << " NUMA node" << (topo.nodes().size() == 1 ? "" : "s") << ":\n";
    for (const Node& n : topo.nodes()) {
        std::cout << "  node " << n.os_index << ": package " << n.package << ", "
                  << topo.cores_of_node(n.os_index).size() << " cores, " << n.pus.size() << " PUs ("
                  << ranges(n.pus) << "), " << (n.memory_bytes ? format_bytes(static_cast<double>(n.memory_bytes)) : "memory unknown")
                  << "\n";
    }
    if (topo.has_distances()) {
        std::cout << "distances (latency, 10 = local):\n";
        for (const Node& a : topo.nodes()) {
            std::cout << "  node " << a.os_index << ":";
            for (const Node& b : topo.nodes()) {
                auto d = topo.distance(a.os_index, b.os_index);
                std::cout << " " << (d ? std::to_string(*d) : "-");
            }
            std::cout << "\n";
        }
    } else {
        std::cout << "distances: none reported\n";
    }
    const std::vector<NetDevice> devs = topo.net_devices();
    std::cout << "network/RDMA devices:" << (devs.empty() ? " none found" : "") << "\n";
    for (const NetDevice& d : devs) {
        const auto node = d.locality.node();
        std::cout << "  " << d.name << " (" << d.kind << "): "
                  << (d.pci_bdf.empty() ? "no PCI parent" : "PCI " + d.pci_bdf) << ", node "
                  << (node ? std::to_string(*node) : "unknown") << "\n";
    }
    if (nic) {
        const auto node = nic->node();
        if (node)
            std::cout << "NIC " << *nic_name << ": node " << ranges(nic->nodes) << " (" << nic->detail << ")\n";
        else
            std::cout << "NIC " << *nic_name << ": node unknown, because " << nic->detail << "\n";
    } else {
        std::cout << "NIC: not given (--nic), placement as for an unknown node\n";
    }
    std::cout << "placement of " << p.workers.size() << " worker" << (p.workers.size() == 1 ? "" : "s") << ":\n"
              << p.explain();
}

}  // namespace

std::span<const rmig::OptionSpec> rmig::cli::topo_options() {
    using K = OptionKind;
    static const OptionSpec kOptions[] = {
        {.name = "nic", .metavar = "BDF|NAME",
         .help = "the NIC: PCI address (0000:3b:00.0), netdev (eth0) or RDMA device (mlx5_0)"},
        {.name = "workers", .kind = K::whole, .metavar = "N", .help = "number of worker threads to place",
         .number_default = 4, .min = 1, .max = 4096},
        {.name = "synthetic", .metavar = "DESC",
         .help = "use an hwloc synthetic topology instead of this machine, e.g. \"pack:2 numa:1 core:8 pu:2\" "
                 "(no IO devices)"},
        {.name = "xml", .metavar = "FILE", .help = "use an hwloc XML topology (lstopo --of xml) instead"},
        {.name = "json", .kind = K::flag, .help = "print one JSON object instead of text"},
        {.name = "help", .kind = K::flag, .help = "this text"},
    };
    return kOptions;
}

int rmig::cli::topo_command(const Args& a) {
    log::set_prefix("rmig topo");
    Options o;
    if (auto v = a.get("nic")) o.nic = *v;
    if (auto v = a.get("synthetic")) o.synthetic = *v;
    if (auto v = a.get("xml")) o.xml = *v;
    o.json = a.flag("json");
    o.workers = static_cast<unsigned>(a.whole("workers"));
    if (!a.positional().empty()) throw UsageError(cat("unexpected argument '", a.positional()[0], "'"));
    if (o.synthetic && o.xml) throw UsageError("--synthetic and --xml exclude each other");
    try {
        // Placement warnings are shown in the output itself.
        log::set_level(log::Level::error);
        const Topology topo = o.synthetic ? Topology::synthetic(*o.synthetic)
                              : o.xml     ? Topology::xml_file(*o.xml)
                                          : Topology::machine();
        std::optional<NicLocality> nic;
        if (o.nic) nic = topo.locate_nic(*o.nic);
        const Placement p = plan(topo, nic ? nic->node() : std::nullopt, o.workers);
        if (o.json)
            std::cout << to_json(topo, o.nic, nic, p).dump(2) << "\n";
        else
            print_text(topo, o.nic, nic, p);
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "rmig topo: " << e.what() << "\n";
        return 1;
    }
}
