#include "numa/topology.hpp"

#include <hwloc.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <functional>

#include "common/error.hpp"
#include "numa/hwloc_handles.hpp"

namespace rmig::numa {

namespace {

int to_int(unsigned os_index) { return static_cast<int>(os_index); }

std::string describe(hwloc_obj_t obj) {
    return cat(hwloc_obj_type_string(obj->type), " L#", obj->logical_index);
}

std::string format_bdf(hwloc_obj_t pci) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", pci->attr->pcidev.domain,
                  pci->attr->pcidev.bus, pci->attr->pcidev.dev, pci->attr->pcidev.func);
    return buf;
}

hwloc_obj_t pci_ancestor(hwloc_obj_t obj) {
    for (hwloc_obj_t p = obj->parent; p; p = p->parent)
        if (p->type == HWLOC_OBJ_PCI_DEVICE) return p;
    return nullptr;
}

bool is_net_or_rdma(hwloc_obj_t osdev) {
    return osdev->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK ||
           osdev->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS;
}

// Software RDMA devices (rxe) name the netdev they run on in sysfs; pointing the
// user there turns "unknown" into something actionable.
std::string rxe_parent_hint(const std::string& name) {
    std::ifstream in("/sys/class/infiniband/" + name + "/parent");
    std::string parent;
    if (in && std::getline(in, parent) && !parent.empty())
        return cat("; it runs on netdev ", parent, ", so --nic ", parent, " gives the node");
    return "";
}

}  // namespace

std::optional<int> NicLocality::node() const {
    if (nodes.empty()) return std::nullopt;
    return *std::min_element(nodes.begin(), nodes.end());
}

// "[dddd:]bb:dd.f" with a 4-8 digit domain (VMD uses 5). Hand-rolled: std::regex
// trips g++ 12's -Wmaybe-uninitialized under the sanitizers.
bool looks_like_pci_bdf(const std::string& text) {
    auto hex_run = [&](size_t from, size_t len) {
        if (from + len > text.size()) return false;
        for (size_t i = from; i < from + len; ++i)
            if (!std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
        return true;
    };
    // Everything after the optional domain is exactly "bb:dd.f": 7 characters.
    if (text.size() < 7) return false;
    const size_t rest = text.size() - 7;
    if (rest != 0) {
        const size_t domain = rest - 1;
        if (domain < 4 || domain > 8 || !hex_run(0, domain) || text[domain] != ':') return false;
    }
    return hex_run(rest, 2) && text[rest + 2] == ':' && hex_run(rest + 3, 2) && text[rest + 5] == '.' &&
           text[rest + 6] >= '0' && text[rest + 6] <= '7';
}

void Topology::Deleter::operator()(hwloc_topology* t) const noexcept { hwloc_topology_destroy(t); }

namespace {

// init, configure (source-specific), keep IO devices, load. IO objects are
// filtered out by default, and that applies to XML input too: without these
// filters the PCI devices of a test XML would silently vanish.
hwloc_topology* load(const std::string& what, const std::function<int(hwloc_topology_t)>& configure) {
    hwloc_topology_t t = nullptr;
    if (hwloc_topology_init(&t) != 0) throw_errno(cat("hwloc: initialising topology for ", what));
    std::unique_ptr<hwloc_topology, void (*)(hwloc_topology_t)> guard(t, hwloc_topology_destroy);
    if (configure(t) != 0) throw_errno(cat("hwloc: cannot use ", what));
    // PCI devices and bridges: the important ones (NICs, GPUs, storage) are
    // enough to locate a NIC. OS devices: all of them, so that a software device
    // (rxe, veth) is found and reported as "no PCI parent" rather than "no such device".
    hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    hwloc_topology_set_type_filter(t, HWLOC_OBJ_OS_DEVICE, HWLOC_TYPE_FILTER_KEEP_ALL);
    if (hwloc_topology_load(t) != 0) throw_errno(cat("hwloc: loading topology from ", what));
    return guard.release();
}

}  // namespace

// Linux's own backend reads the PCI tree and each device's NUMA node from
// sysfs; that is all rmig needs. Debian's libhwloc-plugins adds components
// that cost and break more than they give here: "pci" (libpciaccess) adds
// only vendor names and leaks its pci.ids cache, which fails every
// LeakSanitizer run; "opencl" and "gl" enumerate GPUs and displays through
// their vendors' libraries (ocl-icd loads every ICD), whose thread-local
// storage crashes LeakSanitizer at exit. Without the plugins these names are
// unknown and hwloc 2.9 refuses to exclude them with EINVAL: nothing to
// exclude is not an error. Any other failure is.
void detail::exclude_unneeded_components(hwloc_topology_t t) {
    for (const char* name : {"pci", "opencl", "gl"}) {
        if (hwloc_topology_set_components(t, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, name) == 0) continue;
        if (errno == EINVAL) continue;
        throw_errno(cat("hwloc: excluding the ", name, " component on this machine"));
    }
}

Topology Topology::machine() {
    return Topology(Handle(load("this machine",
                                [](hwloc_topology_t t) {
                                    detail::exclude_unneeded_components(t);
                                    return 0;
                                })),
                    "this machine");
}

Topology Topology::synthetic(const std::string& description) {
    const std::string what = cat("synthetic description '", description, "'");
    return Topology(Handle(load(what, [&](hwloc_topology_t t) {
                        return hwloc_topology_set_synthetic(t, description.c_str());
                    })),
                    cat("synthetic: ", description));
}

Topology Topology::xml_file(const std::string& path) {
    // hwloc's XML errors go to stderr only; say which file up front.
    if (!std::ifstream(path)) throw_errno(cat("hwloc: reading topology XML ", path));
    const std::string what = cat("XML topology ", path);
    return Topology(Handle(load(what, [&](hwloc_topology_t t) {
                        return hwloc_topology_set_xml(t, path.c_str());
                    })),
                    cat("xml: ", path));
}

Topology::Topology(Handle topo, std::string source) : topo_(std::move(topo)), source_(std::move(source)) {
    index();
}
Topology::Topology(Topology&&) noexcept = default;
Topology& Topology::operator=(Topology&&) noexcept = default;
Topology::~Topology() = default;

void Topology::index() {
    hwloc_topology_t t = topo_.get();
    for (hwloc_obj_t n = nullptr; (n = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, n));) {
        Node node;
        node.os_index = to_int(n->os_index);
        node.memory_bytes = n->attr ? n->attr->numanode.local_memory : 0;
        if (hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(t, HWLOC_OBJ_PACKAGE, n))
            node.package = to_int(pkg->logical_index);
        if (n->cpuset && !hwloc_bitmap_iszero(n->cpuset)) {
            for (hwloc_obj_t pu = nullptr;
                 (pu = hwloc_get_next_obj_inside_cpuset_by_type(t, n->cpuset, HWLOC_OBJ_PU, pu));)
                node.pus.push_back(to_int(pu->os_index));
        }
        std::sort(node.pus.begin(), node.pus.end());
        nodes_.push_back(std::move(node));
    }
    std::sort(nodes_.begin(), nodes_.end(),
              [](const Node& a, const Node& b) { return a.os_index < b.os_index; });

    // Latency matrix between nodes (ACPI SLIT on Linux, <distances2> in XML).
    unsigned nr = 1;
    hwloc_distances_s* d = nullptr;
    if (hwloc_distances_get_by_type(t, HWLOC_OBJ_NUMANODE, &nr, &d, HWLOC_DISTANCES_KIND_MEANS_LATENCY, 0) == 0 &&
        nr >= 1 && d) {
        int max_os = 0;
        for (unsigned i = 0; i < d->nbobjs; ++i) max_os = std::max(max_os, to_int(d->objs[i]->os_index));
        distance_index_.assign(static_cast<size_t>(max_os) + 1, -1);
        distances_.assign(d->nbobjs, std::vector<std::uint64_t>(d->nbobjs));
        for (unsigned i = 0; i < d->nbobjs; ++i) {
            distance_index_[d->objs[i]->os_index] = to_int(i);
            for (unsigned j = 0; j < d->nbobjs; ++j) distances_[i][j] = d->values[i * d->nbobjs + j];
        }
        hwloc_distances_release(t, d);
    }
}

bool Topology::has_node(int os_index) const {
    return std::any_of(nodes_.begin(), nodes_.end(), [&](const Node& n) { return n.os_index == os_index; });
}

const Node& Topology::node(int os_index) const {
    for (const Node& n : nodes_)
        if (n.os_index == os_index) return n;
    throw Error(cat("NUMA node ", os_index, " does not exist in ", source_, " (it has ", nodes_.size(),
                    " node", nodes_.size() == 1 ? "" : "s", ")"));
}

std::vector<Core> Topology::cores_of_node(int os_index) const {
    node(os_index);  // validates
    hwloc_topology_t t = topo_.get();
    hwloc_obj_t n = hwloc_get_numanode_obj_by_os_index(t, static_cast<unsigned>(os_index));
    std::vector<Core> cores;
    if (!n || !n->cpuset || hwloc_bitmap_iszero(n->cpuset)) return cores;  // memory-only node
    for (hwloc_obj_t c = nullptr; (c = hwloc_get_next_obj_inside_cpuset_by_type(t, n->cpuset, HWLOC_OBJ_CORE, c));) {
        Core core{to_int(c->logical_index), os_index, {}};
        for (hwloc_obj_t pu = nullptr; (pu = hwloc_get_next_obj_inside_cpuset_by_type(t, c->cpuset, HWLOC_OBJ_PU, pu));)
            core.pus.push_back(to_int(pu->os_index));
        std::sort(core.pus.begin(), core.pus.end());
        if (!core.pus.empty()) cores.push_back(std::move(core));
    }
    if (cores.empty()) {
        // Some platforms (and synthetic descriptions without "core:") report no
        // Core objects: treat each PU as a core of its own.
        for (hwloc_obj_t pu = nullptr; (pu = hwloc_get_next_obj_inside_cpuset_by_type(t, n->cpuset, HWLOC_OBJ_PU, pu));)
            cores.push_back(Core{to_int(pu->logical_index), os_index, {to_int(pu->os_index)}});
    }
    return cores;
}

std::optional<std::uint64_t> Topology::distance(int from_node, int to_node) const {
    auto row = [&](int os) -> int {
        if (os < 0 || static_cast<size_t>(os) >= distance_index_.size()) return -1;
        return distance_index_[static_cast<size_t>(os)];
    };
    const int i = row(from_node), j = row(to_node);
    if (i < 0 || j < 0) return std::nullopt;
    return distances_[static_cast<size_t>(i)][static_cast<size_t>(j)];
}

namespace {

// The NUMA nodes an IO object is local to: those of its first non-IO ancestor.
// An object hanging off the machine root of a multi-node box has no known
// locality (Linux reports numa_node -1: firmware without _PXM, or a VM).
NicLocality locality_of_io_object(const Topology& topo, hwloc_topology_t t, hwloc_obj_t obj,
                                  const std::string& what) {
    NicLocality loc;
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(t, obj);
    if (!anc || !anc->nodeset) {
        loc.detail = cat(what, " has no CPU-side ancestor in the topology");
        return loc;
    }
    if (!anc->parent && topo.nodes().size() > 1) {
        loc.detail = cat(what, " is attached to the whole machine: the platform reports no NUMA "
                               "locality for it (numa_node -1 in sysfs)");
        return loc;
    }
    for (unsigned i = hwloc_bitmap_first(anc->nodeset); i != static_cast<unsigned>(-1);
         i = hwloc_bitmap_next(anc->nodeset, i))
        if (topo.has_node(to_int(i))) loc.nodes.push_back(to_int(i));
    if (loc.nodes.empty()) {
        loc.detail = cat(what, " is under ", describe(anc), ", which has no NUMA node");
        return loc;
    }
    loc.detail = cat(what, " under ", describe(anc));
    return loc;
}

}  // namespace

NicLocality Topology::locate_nic(const std::string& bdf_or_name) const {
    hwloc_topology_t t = topo_.get();
    const bool synthetic = source_.rfind("synthetic", 0) == 0;
    if (looks_like_pci_bdf(bdf_or_name)) {
        hwloc_obj_t pci = hwloc_get_pcidev_by_busidstring(t, bdf_or_name.c_str());
        if (!pci) {
            return {{}, synthetic ? cat("PCI ", bdf_or_name, ": synthetic topologies have no IO devices")
                                  : cat("no PCI device ", bdf_or_name, " in ", source_)};
        }
        return locality_of_io_object(*this, t, pci, cat("PCI ", format_bdf(pci)));
    }
    for (hwloc_obj_t os = nullptr; (os = hwloc_get_next_osdev(t, os));) {
        if (!os->name || bdf_or_name != os->name || !is_net_or_rdma(os)) continue;
        hwloc_obj_t pci = pci_ancestor(os);
        if (!pci) {
            return {{}, cat(bdf_or_name, " has no PCI parent (a software device such as rxe, siw, "
                                         "veth or a bridge)",
                            rxe_parent_hint(bdf_or_name))};
        }
        return locality_of_io_object(*this, t, pci, cat(bdf_or_name, " on PCI ", format_bdf(pci)));
    }
    if (synthetic) return {{}, cat(bdf_or_name, ": synthetic topologies have no IO devices")};
    return {{}, cat("no network or RDMA device named ", bdf_or_name, " in ", source_, rxe_parent_hint(bdf_or_name))};
}

std::optional<int> Topology::node_of_pci(const std::string& bdf) const {
    if (!looks_like_pci_bdf(bdf)) return std::nullopt;
    return locate_nic(bdf).node();
}

std::optional<int> Topology::node_of_netdev(const std::string& name) const {
    if (looks_like_pci_bdf(name)) return std::nullopt;
    return locate_nic(name).node();
}

std::vector<NetDevice> Topology::net_devices() const {
    hwloc_topology_t t = topo_.get();
    std::vector<NetDevice> out;
    for (hwloc_obj_t os = nullptr; (os = hwloc_get_next_osdev(t, os));) {
        if (!os->name || !is_net_or_rdma(os)) continue;
        NetDevice dev;
        dev.name = os->name;
        dev.kind = os->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK ? "net" : "rdma";
        if (hwloc_obj_t pci = pci_ancestor(os)) {
            dev.pci_bdf = format_bdf(pci);
            dev.locality = locality_of_io_object(*this, t, pci, cat(dev.name, " on PCI ", dev.pci_bdf));
        } else {
            dev.locality.detail = cat(dev.name, " has no PCI parent (software device)");
        }
        out.push_back(std::move(dev));
    }
    return out;
}

}  // namespace rmig::numa
