// Who may run without authentication: only two ends on one host, and only when
// asked for explicitly (docs/security.md, "Policy").
#pragma once

#include <string>

namespace rmig::security {

// True for tcp:/rdma: URIs whose host is 127.0.0.0/8, ::1 or "localhost".
bool is_loopback_uri(const std::string& uri);

// Writes 32 random bytes as hex to `path` (created with mode 0600, must not
// exist yet), for --psk-file. Throws Error naming the path.
void write_random_psk_file(const std::string& path);

}  // namespace rmig::security
