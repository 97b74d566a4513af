// Latency-critical threads (post-copy's fault path) run ahead of the bulk
// ones on a busy host: a higher scheduling priority where the process may
// take it (root or CAP_SYS_NICE), else nothing changes.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

namespace rmig {

// Raises the calling thread's priority to nice -10; false where not allowed.
inline bool raise_priority() { return ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), -10) == 0; }

}  // namespace rmig
