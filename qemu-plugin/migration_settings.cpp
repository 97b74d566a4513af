#include "qemu-plugin/migration_settings.hpp"

namespace rmig::qemu {

using nlohmann::json;

namespace {

// Whether a query-migrate-capabilities reply names this capability.
bool lists(const json& capabilities, const std::string& name) {
    for (auto& c : capabilities)
        if (c.value("capability", "") == name) return true;
    return false;
}

}  // namespace

json to_json(const MigrationSettings& s) {
    return {{"multifd_channels", s.multifd_channels},
            {"max_bandwidth", s.max_bandwidth},
            {"downtime_limit_ms", s.downtime_limit_ms},
            {"multifd_compression", s.multifd_compression},
            {"auto_converge", s.auto_converge},
            {"cpu_throttle_initial", s.cpu_throttle_initial},
            {"cpu_throttle_increment", s.cpu_throttle_increment},
            {"postcopy", s.postcopy},
            {"postcopy_preempt", s.postcopy_preempt}};
}

MigrationSettings settings_from_json(const json& j) {
    try {
        MigrationSettings s;
        s.multifd_channels = j.at("multifd_channels").get<uint32_t>();
        s.max_bandwidth = j.at("max_bandwidth").get<uint64_t>();
        s.downtime_limit_ms = j.at("downtime_limit_ms").get<uint64_t>();
        // Absent from an rmig before it: QEMU's default.
        s.multifd_compression = j.value("multifd_compression", std::string("none"));
        s.auto_converge = j.value("auto_converge", false);
        s.cpu_throttle_initial = j.value("cpu_throttle_initial", 20u);
        s.cpu_throttle_increment = j.value("cpu_throttle_increment", 10u);
        s.postcopy = j.value("postcopy", false);
        s.postcopy_preempt = j.value("postcopy_preempt", false);
        return s;
    } catch (const json::exception& e) {
        throw ProtocolError(cat("bad migration settings from peer: ", e.what()));
    }
}

void apply_settings(QmpClient& qmp, const MigrationSettings& s, Side side) {
    // "events": QEMU announces each state change (MIGRATION), so rmig wakes
    // on completion instead of polling, and reads its timestamp (blackout).
    json caps = json::array({{{"capability", "multifd"}, {"state", s.multifd_channels > 0}},
                             {{"capability", "events"}, {"state", true}}});
    if (side == Side::source) caps.push_back({{"capability", "auto-converge"}, {"state", s.auto_converge}});
    // Named only when wanted, or when QEMU knows them: a QEMU without
    // postcopy-preempt refuses a list that names it.
    json known = qmp.execute("query-migrate-capabilities");  // once, not per capability
    auto knows = [&known](const std::string& name) { return lists(known, name); };
    if (s.postcopy || knows("postcopy-ram")) caps.push_back({{"capability", "postcopy-ram"}, {"state", s.postcopy}});
    if (s.postcopy_preempt || knows("postcopy-preempt"))
        caps.push_back({{"capability", "postcopy-preempt"}, {"state", s.postcopy_preempt}});
    qmp.execute("migrate-set-capabilities", {{"capabilities", caps}});
    json params = json::object();
    if (s.multifd_channels > 0) {
        params["multifd-channels"] = s.multifd_channels;
        // Both sides: the destination's multifd threads decompress.
        params["multifd-compression"] = s.multifd_compression;
    }
    if (side == Side::source) {
        params["max-bandwidth"] = s.max_bandwidth;
        params["downtime-limit"] = s.downtime_limit_ms;
        params["cpu-throttle-initial"] = s.cpu_throttle_initial;
        params["cpu-throttle-increment"] = s.cpu_throttle_increment;
    }
    if (!params.empty()) qmp.execute("migrate-set-parameters", params);
}

bool has_capability(QmpClient& qmp, const std::string& name) {
    return lists(qmp.execute("query-migrate-capabilities"), name);
}

MigrationSettings read_settings(QmpClient& qmp) {
    MigrationSettings s;
    bool multifd = false;
    s.auto_converge = false;  // unless QEMU lists it on
    for (auto& c : qmp.execute("query-migrate-capabilities")) {
        if (c.value("capability", "") == "multifd") multifd = c.value("state", false);
        if (c.value("capability", "") == "auto-converge") s.auto_converge = c.value("state", false);
        if (c.value("capability", "") == "postcopy-ram") s.postcopy = c.value("state", false);
        if (c.value("capability", "") == "postcopy-preempt") s.postcopy_preempt = c.value("state", false);
    }
    json p = qmp.execute("query-migrate-parameters");
    s.multifd_channels = multifd ? p.value("multifd-channels", 2u) : 0;
    s.max_bandwidth = p.value("max-bandwidth", uint64_t{0});
    s.downtime_limit_ms = p.value("downtime-limit", uint64_t{0});
    s.cpu_throttle_initial = p.value("cpu-throttle-initial", 20u);
    s.cpu_throttle_increment = p.value("cpu-throttle-increment", 10u);
    s.multifd_compression = multifd ? p.value("multifd-compression", std::string("none")) : "none";
    return s;
}

}  // namespace rmig::qemu
