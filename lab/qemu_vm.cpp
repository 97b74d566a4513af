#include "lab/qemu_vm.hpp"

#include <fstream>
#include <thread>

#include "common/error.hpp"
#include "guest/guest_check.hpp"

namespace rmig::lab {

QemuVm::QemuVm(const std::string& dir, const std::string& name, const VmSpec& spec)
    : spec_(spec),
      qmp_path_(dir + "/" + name + ".qmp"),
      lab_qmp_path_(dir + "/" + name + "-lab.qmp"),
      serial_path_(dir + "/" + name + ".serial"),
      log_path_(dir + "/" + name + ".log") {
    if (spec.ram_mib * (1 << 20) < guest::kMinGuestRam)
        throw Error(cat("the test guest needs at least ", guest::kMinGuestRam >> 20, " MiB of RAM"));
    std::vector<std::string> argv = {
        "qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-display", "none",
        "-m", cat(spec.ram_mib, "M"),
        "-drive", guest::qemu_drive_option(guest::locate_guest_image()),
        "-serial", "file:" + serial_path_,
        "-qmp", cat("unix:", qmp_path_, ",server=on,wait=off"),
        "-qmp", cat("unix:", lab_qmp_path_, ",server=on,wait=off"),
        "-name", name};
    if (spec.memfd) {
        argv.insert(argv.end(), {"-object", cat("memory-backend-memfd,id=mem0,size=", spec.ram_mib,
                                                "M,share=on"),
                                 "-machine", "pc,memory-backend=mem0"});
    } else {
        argv.insert(argv.end(), {"-machine", "pc"});
    }
    if (spec.destination) argv.insert(argv.end(), {"-S", "-incoming", "defer"});
    if (!spec.destination)
        for (const auto& p : spec.preload)
            argv.insert(argv.end(), {"-device", cat("loader,file=", p.file, ",addr=", p.addr, ",force-raw=on")});
    const std::string& ns = spec.destination ? spec.dest_netns : spec.source_netns;
    if (!ns.empty()) argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
    proc_ = Process(argv, {log_path_, "=stdout"});
    qmp_ = std::make_unique<qemu::QmpClient>(lab_qmp_path_, std::chrono::seconds(20));
}

QemuVm::~QemuVm() {
    qmp_.reset();
    proc_.stop(std::chrono::milliseconds(1000));
}

qemu::QmpClient& QemuVm::qmp() { return *qmp_; }

std::string QemuVm::state() { return qmp_->execute("query-status").value("status", ""); }

size_t QemuVm::markers() const { return guest::serial_marker_count(serial_path_); }

bool QemuVm::keeps_running(std::chrono::milliseconds within) const {
    size_t before = markers();
    auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (markers() > before + 1) return true;
    }
    return false;
}

void QemuVm::dump_memory(const std::string& path) {
    qmp_->execute("pmemsave", {{"val", 0}, {"size", spec_.ram_mib << 20}, {"filename", path}},
                  std::chrono::seconds(60));
}

}  // namespace rmig::lab
