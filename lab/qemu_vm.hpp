// One real qemu-system-x86_64 running the test guest under TCG, for the e2e
// tests, the demo and the benchmarks. Each VM gets two QMP sockets: one for
// rmig (the one under test) and one for the lab's own checks, since a QMP
// socket serves one client at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/process.hpp"
#include "qemu-plugin/qmp_client.hpp"

namespace rmig::lab {

struct VmSpec {
    uint64_t ram_mib = 128;
    bool destination = false;  // -S -incoming defer
    bool memfd = false;        // memory-backend-memfd instead of anonymous RAM
    // Files loaded into the source guest's RAM at these guest-physical
    // addresses before it starts (QEMU's generic loader): memory with a
    // chosen content for the migration to move. The destination gets it only
    // through the migration.
    struct Preload {
        std::string file;
        uint64_t addr = 0;
    };
    std::vector<Preload> preload;
    // Network namespaces the source / destination QEMU run in (the two ends
    // of an emulated WAN, lab/wan/), for direct TCP migrations across it.
    std::string source_netns, dest_netns;
};

class QemuVm {
public:
    QemuVm(const std::string& dir, const std::string& name, const VmSpec& spec);
    ~QemuVm();

    const std::string& qmp_path() const { return qmp_path_; }  // for rmig
    const std::string& serial_path() const { return serial_path_; }
    qemu::QmpClient& qmp();                                     // the lab's own monitor
    std::string state();                                        // query-status
    size_t markers() const;                                     // passes the guest finished
    // True if the guest's serial output grows within `within`.
    bool keeps_running(std::chrono::milliseconds within = std::chrono::milliseconds(3000)) const;
    void dump_memory(const std::string& path);                  // pmemsave of all RAM
    bool alive() { return proc_.running(); }
    void kill() { proc_.stop(std::chrono::milliseconds(1000)); }
    void signal(int sig) { proc_.signal(sig); }  // e.g. SIGKILL for fault injection
    const VmSpec& spec() const { return spec_; }
    const std::string& log_path() const { return log_path_; }

private:
    VmSpec spec_;
    std::string qmp_path_, lab_qmp_path_, serial_path_, log_path_;
    Process proc_;
    std::unique_ptr<qemu::QmpClient> qmp_;
};

}  // namespace rmig::lab
