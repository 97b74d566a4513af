#include "lab/wan/net_namespace.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <exception>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/unique_fd.hpp"
#include "lab/wan/command.hpp"

namespace rmig::wan {

namespace {

std::string netns_path(const std::string& name) {
    return "/run/netns/" + name;
}

}  // namespace

bool NetNamespace::exists(const std::string& name) {
    std::error_code ec;
    return std::filesystem::exists(netns_path(name), ec);
}

void NetNamespace::remove(const std::string& name) {
    if (!exists(name)) return;
    run_checked({"ip", "netns", "del", name}, cat("network namespace ", name, ": removing the stale one"));
}

NetNamespace::NetNamespace(std::string name) : name_(std::move(name)) {
    if (exists(name_)) {
        log::warn("network namespace ", name_, " exists (left by an earlier run?): deleting it");
        remove(name_);
    }
    run_checked({"ip", "netns", "add", name_}, cat("network namespace ", name_));
}

NetNamespace::~NetNamespace() {
    CommandResult r = run_command({"ip", "netns", "del", name_});
    if (r.status != 0) log::warn("network namespace ", name_, ": ip netns del: ", r.output);
}

void NetNamespace::run_inside(const std::function<void()>& fn) const {
    std::exception_ptr failure;
    std::thread t([&] {
        try {
            UniqueFd ns(::open(netns_path(name_).c_str(), O_RDONLY | O_CLOEXEC));
            if (!ns) throw_errno(cat("network namespace ", name_, ": open ", netns_path(name_)));
            if (::setns(ns.get(), CLONE_NEWNET) < 0) throw_errno(cat("network namespace ", name_, ": setns"));
            fn();
        } catch (...) {
            failure = std::current_exception();
        }
    });
    t.join();
    if (failure) std::rethrow_exception(failure);
}

void write_proc_sys(const std::string& key, const std::string& value) {
    std::string path = "/proc/sys/" + key;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) throw_errno(cat("sysctl ", key, ": open ", path));
    if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
        throw_errno(cat("sysctl ", key, " = '", value, "'"));
}

std::string read_proc_sys(const std::string& key) {
    std::ifstream in("/proc/sys/" + key);
    if (!in) throw Error(cat("sysctl ", key, ": cannot read /proc/sys/", key));
    std::string v;
    std::getline(in, v);
    return v;
}

}  // namespace rmig::wan
