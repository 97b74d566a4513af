#include "lab/wan/name_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.hpp"

namespace rmig::wan {

std::string NameLock::directory() {
    return "/run/rmig-wan";
}

NameLock::NameLock(const std::string& name) : path_(cat(directory(), "/", name, ".lock")) {
    if (::mkdir(directory().c_str(), 0755) < 0 && errno != EEXIST)
        throw_errno(cat("link ", name, ": mkdir ", directory()));
    // The holder removes the file before it unlocks, so a lock taken on a
    // file that is no longer at the path was taken on a dead name: retry.
    for (int attempt = 0; attempt < 10; ++attempt) {
        UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
        if (!fd) {
            int err = errno;
            throw_errno(cat("link ", name, ": open ", path_, err == EACCES ? " (rmig-wan up needs root)" : ""), err);
        }
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK) throw_errno(cat("link ", name, ": flock ", path_));
            char pid[32] = {};
            ssize_t n = ::pread(fd.get(), pid, sizeof pid - 1, 0);
            throw Error(cat("link ", name, " is up in another process (pid ", n > 0 ? pid : "?", ", holding ", path_,
                            "); stop it first or pick another --name"));
        }
        struct stat held {
        }, now{};
        if (::fstat(fd.get(), &held) < 0 || ::stat(path_.c_str(), &now) < 0 || held.st_ino != now.st_ino ||
            held.st_dev != now.st_dev)
            continue;
        std::string me = std::to_string(::getpid());
        if (::ftruncate(fd.get(), 0) < 0 || ::pwrite(fd.get(), me.data(), me.size(), 0) < 0)
            throw_errno(cat("link ", name, ": writing ", path_));
        fd_ = std::move(fd);
        return;
    }
    throw Error(cat("link ", name, ": ", path_, " kept changing under the lock"));
}

NameLock::~NameLock() {
    if (fd_) ::unlink(path_.c_str());
}

}  // namespace rmig::wan
