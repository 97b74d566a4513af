// What one tunnel session (one migration through `rmig tunnel-send` or
// `tunnel-receive`) did: written as one JSON line per session (--json) and
// logged as one summary line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qemu-plugin/striped_stream.hpp"

namespace rmig::qemu::tunnel {

struct SessionReport {
    std::string role;     // "send" or "receive"
    std::string name;     // the socket name (the source path's last component)
    std::string socket;   // this host's UNIX path
    std::string session;  // hex id, the same on both hosts
    std::string peer;     // the other host's address
    bool ok = false;
    std::string error;
    double seconds = 0;   // first connection to the last one closed
    std::vector<ChannelStats> streams;  // one per QEMU connection, in connect order
    nlohmann::json to_json() const;
    std::string summary() const;  // one line for the log
};

}  // namespace rmig::qemu::tunnel
