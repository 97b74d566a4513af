#include "qemu-plugin/tunnel_protocol.hpp"

#include <algorithm>

#include "common/error.hpp"
#include "qemu-plugin/session_limits.hpp"

namespace rmig::qemu::tunnel {

using nlohmann::json;

std::string checked_socket_name(const std::string& name) {
    constexpr size_t kMaxName = 100;  // sun_path holds 108 with the directory
    bool plain = !name.empty() && name.size() <= kMaxName && name != "." && name != "..";
    for (char c : name)
        plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                          c == '_' || c == '-');
    if (!plain)
        throw Error(cat("socket name '", name.substr(0, kMaxName),
                        "' is not a plain file name (letters, digits, '.', '_', '-'; at most ", kMaxName,
                        " bytes)"));
    return name;
}

std::string base_name(const std::string& path) {
    auto end = path.find_last_not_of('/');
    if (end == std::string::npos) return "";
    auto start = path.rfind('/', end);
    return path.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

json open_request(const std::string& name, const FlowSettings& flow) {
    return {{"op", "open"},
            {"protocol", kProtocol},
            {"name", name},
            {"flows", {{"window_bytes", flow.window_bytes}, {"grace_ms", flow.grace.count()}}}};
}

json end_request(uint32_t streams) { return {{"op", "end"}, {"streams", streams}}; }

FlowSettings flow_settings_from(const json& open, size_t chunk) {
    if (open.value("protocol", 0) != kProtocol)
        throw Error(cat("tunnel protocol ", open.value("protocol", 0), " asked; this rmig speaks ", kProtocol,
                        " (run the same rmig version on both hosts)"));
    json asked = open.value("flows", json::object());
    FlowSettings f;
    f.chunk = chunk;
    f.window_bytes = std::clamp<uint64_t>(asked.value("window_bytes", uint64_t{f.window_bytes}), 1u << 20, kMaxFlowWindow);
    f.start_window = 0;  // no blackout steering here: the whole window at once
    f.grace = std::chrono::milliseconds(std::clamp<int64_t>(asked.value("grace_ms", int64_t{0}), 0, kMaxReconnectGraceMs));
    return f;
}

}  // namespace rmig::qemu::tunnel
