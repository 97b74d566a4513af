#include "qemu-plugin/prechecks.hpp"

#include <map>

#include "common/error.hpp"
#include "common/units.hpp"

namespace rmig::qemu {

namespace {

Check same(const std::string& name, const std::string& a, const std::string& b) {
    if (a == b) return {name, true, a};
    return {name, false, cat("source ", a, ", destination ", b)};
}

Check same_blocks(const std::vector<RamBlock>& a, const std::vector<RamBlock>& b) {
    std::map<std::string, uint64_t> src, dst;
    for (auto& r : a) src[r.name] = r.used_bytes;
    for (auto& r : b) dst[r.name] = r.used_bytes;
    std::string diff;
    for (auto& [name, size] : src) {
        auto it = dst.find(name);
        if (it == dst.end())
            diff += cat("'", name, "' only on the source; ");
        else if (it->second != size)
            diff += cat("'", name, "' is ", format_bytes(double(size)), " on the source, ",
                        format_bytes(double(it->second)), " on the destination; ");
    }
    for (auto& [name, size] : dst)
        if (!src.count(name)) diff += cat("'", name, "' only on the destination; ");
    if (diff.empty()) return {"ram blocks", true, cat(src.size(), " blocks match")};
    diff.resize(diff.size() - 2);
    return {"ram blocks", false, diff};
}

}  // namespace

std::vector<Check> check_pair(const QemuInfo& s, const QemuInfo& d) {
    std::vector<Check> out;
    out.push_back(same("qemu version", s.version, d.version));
    out.push_back(same("machine type", s.machine_type, d.machine_type));
    out.push_back(same("ram size", format_bytes(double(s.ram_bytes)), format_bytes(double(d.ram_bytes))));
    out.push_back(same_blocks(s.ram_blocks, d.ram_blocks));
    bool src_ok = s.run_state == "running" || s.run_state == "paused" || s.run_state == "prelaunch";
    out.push_back({"source state", src_ok,
                   src_ok ? s.run_state
                          : cat("source QEMU is '", s.run_state,
                                "'; it must be running or paused to migrate")});
    bool dst_ok = d.run_state == "inmigrate";
    out.push_back({"destination state", dst_ok,
                   dst_ok ? d.run_state
                          : cat("destination QEMU is '", d.run_state,
                                "'; start it with '-incoming defer' (and -S to keep it paused)")});
    return out;
}

Check check_settings(const MigrationSettings& s, const MigrationSettings& d) {
    auto desc = [](const MigrationSettings& m) {
        if (!m.multifd_channels) return std::string("multifd off");
        return cat("multifd with ", m.multifd_channels, " channels",
                   m.multifd_compression == "none" ? "" : cat(", ", m.multifd_compression, " compression"));
    };
    if (s.multifd_channels == d.multifd_channels && s.multifd_compression == d.multifd_compression)
        return {"multifd", true, desc(s)};
    return {"multifd", false, cat("source has ", desc(s), ", destination has ", desc(d))};
}

Check check_postcopy(const MigrationSettings& s, const MigrationSettings& d) {
    auto desc = [](const MigrationSettings& m) {
        if (!m.postcopy) return std::string("post-copy off");
        return std::string(m.postcopy_preempt ? "post-copy with a preempt channel" : "post-copy");
    };
    bool ok = s.postcopy && d.postcopy && s.postcopy_preempt == d.postcopy_preempt;
    return {"post-copy", ok, ok ? desc(s) : cat("source has ", desc(s), ", destination has ", desc(d))};
}

bool all_ok(const std::vector<Check>& checks) {
    for (auto& c : checks)
        if (!c.ok) return false;
    return true;
}

std::string failures(const std::vector<Check>& checks) {
    std::string out;
    for (auto& c : checks)
        if (!c.ok) out += cat(out.empty() ? "" : "; ", c.name, ": ", c.detail);
    return out;
}

nlohmann::json to_json(const std::vector<Check>& checks) {
    auto arr = nlohmann::json::array();
    for (auto& c : checks) arr.push_back({{"check", c.name}, {"ok", c.ok}, {"detail", c.detail}});
    return arr;
}

}  // namespace rmig::qemu
