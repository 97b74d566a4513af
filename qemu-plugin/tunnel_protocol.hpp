// What `rmig tunnel-send` and `rmig tunnel-receive` say to each other on a
// session's control channel (docs/wire-protocol.md, "Tunnel sessions"). A
// tunnel session is one migration: the connections one QEMU opened to one
// UNIX path, from its first until all have closed. The number of connections
// is not known up front (libvirt decides: main, multifd, postcopy-preempt),
// so the hello and attach frames count kTunnelStreams, the most one session
// may carry, and streams are numbered in connect order as in `rmig migrate`.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "qemu-plugin/stream_group.hpp"

namespace rmig::qemu::tunnel {

inline constexpr uint32_t kTunnelStreams = 64;
inline constexpr int kProtocol = 1;

// The name the destination connects under its socket directory: the source
// path's last component. Refused (Error) unless it is a plain file name of
// letters, digits, '.', '_', '-' (no '/', not '.' or '..'), at most 100 bytes:
// the destination must never be made to connect outside its directory.
std::string checked_socket_name(const std::string& name);
// The last component of a path ("/run/rmig/vm1.sock" -> "vm1.sock").
std::string base_name(const std::string& path);

// {"op":"open","protocol":1,"name":NAME,"flows":{...}}: the source's first request.
nlohmann::json open_request(const std::string& name, const FlowSettings& flow);
// {"op":"end","streams":N}: every connection of the migration has closed.
nlohmann::json end_request(uint32_t streams);

// The destination's flow settings from an open request, within what it
// accepts to hold (kMaxFlowWindow, kMaxReconnectGraceMs); `chunk` is its own.
FlowSettings flow_settings_from(const nlohmann::json& open, size_t chunk);

}  // namespace rmig::qemu::tunnel
