// The name of a live link: /run/rmig-wan/NAME.lock, held with flock(2) for as
// long as the link is up, so a second `rmig-wan up --name NAME` (or a `down`)
// refuses instead of deleting a live link's namespaces as stale. The file
// goes with the lock; one left by a killed process is taken over (the kernel
// released its lock).
#pragma once

#include <string>

#include "common/unique_fd.hpp"

namespace rmig::wan {

class NameLock {
public:
    // Throws Error saying which process holds it, or why it cannot be taken.
    explicit NameLock(const std::string& name);
    ~NameLock();  // removes the file, then releases the lock
    NameLock(const NameLock&) = delete;
    NameLock& operator=(const NameLock&) = delete;

    static std::string directory();  // /run/rmig-wan

private:
    std::string path_;
    UniqueFd fd_;
};

}  // namespace rmig::wan
