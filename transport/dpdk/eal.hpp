// The DPDK Environment Abstraction Layer, initialised at most once per process
// (DPDK cannot re-initialise it) and cleaned up at exit.
#pragma once

#include <string>
#include <vector>

namespace rmig::transport::dpdk {

class Eal {
public:
    // Initialises the EAL on first call with `args` (or, if empty,
    // $RMIG_DPDK_EAL_ARGS, or defaults for `vdev_only` setups); later calls
    // return the same instance (their args are ignored) or rethrow the first failure.
    // `pci_port`: the PCI address the URI names (the default args allow only it).
    static Eal& instance(const std::string& args, bool vdev_only, const std::string& pci_port = "");

    const std::vector<std::string>& args() const { return args_; }

    Eal(const Eal&) = delete;
    Eal& operator=(const Eal&) = delete;
    ~Eal();

private:
    explicit Eal(std::vector<std::string> args);
    std::vector<std::string> args_;
};

// The arguments rmig passes to rte_eal_init (exposed for tests and logs).
std::vector<std::string> eal_arguments(const std::string& args, bool vdev_only,
                                       const std::string& pci_port = "");

}  // namespace rmig::transport::dpdk
