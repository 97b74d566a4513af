#include "qemu-plugin/tunnel_report.hpp"

#include "common/error.hpp"
#include "common/units.hpp"

namespace rmig::qemu::tunnel {

using nlohmann::json;

json SessionReport::to_json() const {
    json streams_json = json::array();
    uint64_t to_link = 0, from_link = 0;
    for (const auto& s : streams) {
        streams_json.push_back({{"stream", s.channel},
                                {"to_link_bytes", s.to_link},
                                {"from_link_bytes", s.from_link},
                                {"wire_bytes", s.wire},
                                {"reconnects", s.reconnects},
                                {"resent_bytes", s.resent}});
        to_link += s.to_link;
        from_link += s.from_link;
    }
    return {{"role", role},         {"name", name},       {"socket", socket},        {"session", session},
            {"peer", peer},         {"ok", ok},           {"error", error},          {"seconds", seconds},
            {"to_link_bytes", to_link}, {"from_link_bytes", from_link}, {"streams", streams_json}};
}

std::string SessionReport::summary() const {
    uint64_t to_link = 0, from_link = 0;
    for (const auto& s : streams) {
        to_link += s.to_link;
        from_link += s.from_link;
    }
    auto t = totals(streams);
    std::string head = cat(name, " (session ", session.substr(0, 8), "): ");
    std::string figures = cat(streams.size(), " connection(s), ", format_bytes(static_cast<double>(to_link)), " sent, ",
                              format_bytes(static_cast<double>(from_link)), " received in ", format_millis(seconds * 1000),
                              t.reconnects ? cat(", ", t.reconnects, " flow reconnect(s)") : std::string());
    return ok ? head + "done: " + figures : head + "failed: " + error + " (" + figures + ")";
}

}  // namespace rmig::qemu::tunnel
