#include "transport/dpdk/eal.hpp"

#include <rte_eal.h>
#include <rte_errno.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

#include "common/error.hpp"
#include "common/log.hpp"

namespace rmig::transport::dpdk {

namespace {

long configured_hugepages() {
    std::ifstream f("/proc/sys/vm/nr_hugepages");
    long n = 0;
    f >> n;
    return n;
}

bool has_any(const std::vector<std::string>& a, std::initializer_list<const char*> opts) {
    for (const auto& s : a)
        for (const char* o : opts)
            if (s == o || s.rfind(std::string(o) + "=", 0) == 0) return true;
    return false;
}

std::mutex g_mutex;
std::unique_ptr<Eal> g_eal;
std::string g_failure;

}  // namespace

std::vector<std::string> eal_arguments(const std::string& given, bool vdev_only,
                                       const std::string& pci_port) {
    std::string text = given;
    if (text.empty())
        if (const char* env = std::getenv("RMIG_DPDK_EAL_ARGS")) text = env;
    std::vector<std::string> a{"rmig"};
    std::istringstream in(text);
    for (std::string w; in >> w;) a.push_back(w);
    if (text.empty()) {
        // Defaults: memory private to this process, so processes never
        // collide and leave nothing behind: --in-memory with hugepages;
        // without them (where --in-memory is not allowed) --no-huge and
        // --no-shconf (no shared config, no multi-process socket: what a file
        // prefix per process would separate does not exist).
        if (configured_hugepages() == 0) {
            a.push_back("--no-huge");
            a.push_back("-m");
            a.push_back("1024");
            a.push_back("--no-shconf");
        } else {
            a.push_back("--in-memory");
        }
        // Never scan (and grab) every PCI device: only the one the URI names.
        if (vdev_only) {
            a.push_back("--no-pci");
        } else if (!pci_port.empty()) {
            a.push_back("-a");
            a.push_back(pci_port);
        }
    }
    if (!has_any(a, {"-l", "-c", "--lcores"})) {
        // One lcore: the CPU we run on now; our poller is an ordinary thread.
        cpu_set_t set;
        int cpu = 0;
        if (sched_getaffinity(0, sizeof set, &set) == 0)
            for (int i = 0; i < CPU_SETSIZE; ++i)
                if (CPU_ISSET(i, &set)) {
                    cpu = i;
                    break;
                }
        a.push_back("-l");
        a.push_back(std::to_string(cpu));
    }
    if (!has_any(a, {"--no-telemetry", "--telemetry"})) a.push_back("--no-telemetry");
    if (!has_any(a, {"--log-level"})) a.push_back("--log-level=4");
    return a;
}

Eal& Eal::instance(const std::string& args, bool vdev_only, const std::string& pci_port) {
    std::lock_guard lock(g_mutex);
    if (g_eal) return *g_eal;
    if (!g_failure.empty()) throw Error(g_failure);
    auto a = eal_arguments(args, vdev_only, pci_port);
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    std::string joined;
    for (size_t i = 1; i < a.size(); ++i) joined += (i > 1 ? " " : "") + a[i];
    // rte_eal_init pins the calling thread to the main lcore; undo that so the
    // threads this one starts later are not all squeezed onto one CPU.
    cpu_set_t saved;
    bool have_saved = sched_getaffinity(0, sizeof saved, &saved) == 0;
    int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
    int err = rte_errno;
    if (have_saved) sched_setaffinity(0, sizeof saved, &saved);
    if (rc < 0) {
        g_failure = cat("DPDK EAL initialisation failed (", rte_strerror(err), ") with arguments '",
                        joined, "'. Hugepages: configure /proc/sys/vm/nr_hugepages and mount "
                        "hugetlbfs, or run without them: RMIG_DPDK_EAL_ARGS='--no-huge -m 1024 "
                        "--no-shconf'. DPDK needs root (or CAP_SYS_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK "
                        "and access to /dev/vfio for PCI ports). The EAL can be initialised once per "
                        "process, so this process cannot retry.");
        throw Error(g_failure);
    }
    log::info("dpdk: EAL up: ", joined);
    g_eal.reset(new Eal(std::move(a)));
    return *g_eal;
}

Eal::Eal(std::vector<std::string> args) : args_(std::move(args)) {}

Eal::~Eal() { rte_eal_cleanup(); }

}  // namespace rmig::transport::dpdk
