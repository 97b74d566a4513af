// The machine's layout as rmig needs it for placement: NUMA nodes, the cores and
// PUs on each, their memory, and which node a NIC hangs off. Backed by hwloc;
// the topology may be this machine, a synthetic description, or an XML file
// (tests describe machines we do not have that way).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// hwloc's handle, without pulling hwloc.h into every includer.
struct hwloc_topology;

namespace rmig::numa {

struct Node {
    int os_index = -1;
    int package = -1;                // logical index of the enclosing package, -1 if none
    std::vector<int> pus;            // OS indexes of the allowed PUs, ascending
    std::uint64_t memory_bytes = 0;  // local memory (0 when hwloc does not know)
};

// One physical core. Its PUs are hyperthread siblings; the first is the one
// placement uses before touching the others.
struct Core {
    int logical_index = -1;  // unique machine-wide (core OS indexes repeat per package)
    int node = -1;           // OS index of its NUMA node
    std::vector<int> pus;    // OS indexes, ascending
};

// Where a NIC sits. `nodes` is empty when its locality is unknown, and then
// `detail` says why; otherwise `detail` says what it was found as.
struct NicLocality {
    std::vector<int> nodes;  // OS indexes of the nodes it is attached to
    std::string detail;      // e.g. "PCI 0000:3b:00.0 under Package L#1"
    std::optional<int> node() const;  // the lowest of `nodes`, nullopt when unknown
};

// A network or RDMA device hwloc found (Linux netdev or OpenFabrics device).
struct NetDevice {
    std::string name;     // "eth0", "mlx5_0"
    std::string kind;     // "net" or "rdma"
    std::string pci_bdf;  // "0000:3b:00.0", empty when not on PCI (rxe, veth, bridges)
    NicLocality locality;
};

class Topology {
public:
    // This machine, with network and RDMA devices discovered.
    static Topology machine();
    // hwloc synthetic description, e.g. "pack:2 numa:2 core:4 pu:2" (no IO devices).
    static Topology synthetic(const std::string& description);
    // An hwloc XML export, possibly with hand-inserted PCI devices.
    static Topology xml_file(const std::string& path);

    Topology(Topology&&) noexcept;
    Topology& operator=(Topology&&) noexcept;
    ~Topology();

    // What it was loaded from: "this machine", "synthetic: ...", "xml: ...".
    const std::string& source() const { return source_; }

    // NUMA nodes in OS-index order. Nodes without PUs (memory-only) are listed too.
    const std::vector<Node>& nodes() const { return nodes_; }
    const Node& node(int os_index) const;  // throws Error when there is no such node
    bool has_node(int os_index) const;

    // Physical cores of a node, in hwloc's logical order.
    std::vector<Core> cores_of_node(int os_index) const;

    // Relative distance between two nodes (10 = local, as in ACPI SLIT) from the
    // topology's latency matrix; nullopt when the topology has none.
    std::optional<std::uint64_t> distance(int from_node, int to_node) const;
    bool has_distances() const { return !distances_.empty(); }

    // NUMA node of a PCI device given as "0000:3b:00.0" (or "3b:00.0").
    // Nullopt when the device is unknown or its locality is (the whole machine
    // on a multi-node box means firmware did not say). For a device attached to
    // several nodes (a package with two nodes), the lowest.
    std::optional<int> node_of_pci(const std::string& bdf) const;
    // Same for a network interface or RDMA device name ("eth0", "mlx5_0").
    // Software devices (rxe, veth, bridges) have no PCI parent: nullopt.
    std::optional<int> node_of_netdev(const std::string& name) const;
    // Either of the above, with the reason when unknown. A string that parses as
    // a PCI address is looked up as one; anything else as a device name.
    NicLocality locate_nic(const std::string& bdf_or_name) const;

    std::vector<NetDevice> net_devices() const;

    // For code that needs hwloc directly (binding). Owned by this object.
    hwloc_topology* raw() const { return topo_.get(); }

private:
    struct Deleter {
        void operator()(hwloc_topology* t) const noexcept;
    };
    using Handle = std::unique_ptr<hwloc_topology, Deleter>;

    Topology(Handle topo, std::string source);
    void index();  // fills nodes_ and distances_ from the loaded topology

    Handle topo_;
    std::string source_;
    std::vector<Node> nodes_;
    std::vector<int> distance_index_;          // node OS index -> row in distances_
    std::vector<std::vector<std::uint64_t>> distances_;
};

// True when text looks like a PCI address "[dddd:]bb:dd.f".
bool looks_like_pci_bdf(const std::string& text);

}  // namespace rmig::numa
