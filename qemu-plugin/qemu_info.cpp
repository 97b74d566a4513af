#include "qemu-plugin/qemu_info.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>
#include <thread>

namespace rmig::qemu {

using nlohmann::json;

namespace {

// ---- HMP "info ramblock" --------------------------------------------------
// QEMU 7.2 (ram_block_dump) prints, after a header line:
//   "%24s %8s  0x%016x 0x%016x 0x%016x"  name, page size, offset, used, total
// where the page size comes from size_to_str(): "4 KiB", "2 MiB", "1 GiB".
// We parse from the right so that a name with spaces still works.

struct Token {
    size_t pos;
    std::string text;
};

std::vector<Token> tokenize(const std::string& line) {
    std::vector<Token> out;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (i > start) out.push_back({start, line.substr(start, i - start)});
    }
    return out;
}

bool parse_hex(const std::string& s, uint64_t& out) {
    if (s.size() < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return false;
    auto [end, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), out, 16);
    return ec == std::errc() && end == s.data() + s.size();
}

// "4" "KiB" -> 4096. size_to_str uses "%0.3g", so accept a fraction too.
bool parse_size(const std::string& num, const std::string& unit, uint64_t& out) {
    static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double value = 0;
    auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), value);
    if (ec != std::errc() || end != num.data() + num.size() || value < 0) return false;
    for (int shift = 0; const char* u : kUnits) {
        if (unit == u) {
            out = static_cast<uint64_t>(std::llround(std::ldexp(value, shift)));
            return true;
        }
        shift += 10;
    }
    return false;
}

// ---- JSON field access that reports the field instead of nlohmann's text ----

uint64_t want_u64(const json& obj, const char* key, const char* what) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number_unsigned())
        throw ProtocolError(cat(what, ": field '", key, "' missing or not an unsigned integer in ",
                                obj.dump()));
    return it->get<uint64_t>();
}

std::string want_str(const json& obj, const char* key, const char* what) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string())
        throw ProtocolError(cat(what, ": field '", key, "' missing or not a string in ",
                                obj.dump()));
    return it->get<std::string>();
}

const json& want_obj(const json& j, const char* what) {
    if (!j.is_object()) throw ProtocolError(cat(what, ": expected a JSON object, got ", j.dump()));
    return j;
}

// query-migrate fields are optional; QEMU declares some as signed.
uint64_t opt_u64(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return 0;
    if (it->is_number_unsigned()) return it->get<uint64_t>();
    if (it->is_number_integer())
        return static_cast<uint64_t>(std::max<int64_t>(0, it->get<int64_t>()));
    if (it->is_number_float())
        return static_cast<uint64_t>(std::llround(std::max(0.0, it->get<double>())));
    throw ProtocolError(cat("query-migrate: field '", key, "' is not a number: ", it->dump()));
}

double opt_double(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return 0;
    if (it->is_number()) return it->get<double>();
    throw ProtocolError(cat("query-migrate: field '", key, "' is not a number: ", it->dump()));
}

std::string opt_str(const json& obj, const char* key, const char* fallback = "") {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (it->is_string()) return it->get<std::string>();
    throw ProtocolError(cat("query-migrate: field '", key, "' is not a string: ", it->dump()));
}

}  // namespace

std::vector<RamBlock> parse_ramblocks(const std::string& hmp_text) {
    std::vector<RamBlock> blocks;
    std::istringstream in(hmp_text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto tok = tokenize(line);
        if (tok.empty()) continue;
        if (tok.size() >= 2 && tok[0].text == "Block" && tok[1].text == "Name") continue;
        const size_t n = tok.size();
        RamBlock b;
        uint64_t offset = 0, total = 0;
        bool ok = n >= 6 && parse_hex(tok[n - 3].text, offset) &&
                  parse_hex(tok[n - 2].text, b.used_bytes) && parse_hex(tok[n - 1].text, total) &&
                  parse_size(tok[n - 5].text, tok[n - 4].text, b.page_size);
        if (!ok) throw ProtocolError(cat("cannot parse HMP 'info ramblock' line: '", line, "'"));
        b.name = line.substr(tok[0].pos, tok[n - 5].pos - tok[0].pos);
        b.name.erase(b.name.find_last_not_of(" \t") + 1);
        blocks.push_back(std::move(b));
    }
    if (blocks.empty())
        throw ProtocolError(cat("HMP 'info ramblock' listed no RAM block: '",
                                hmp_text.substr(0, 200), "'"));
    return blocks;
}

QemuInfo probe(QmpClient& qmp) {
    QemuInfo info;
    const char* step = "query-version";
    try {
        json v = qmp.execute("query-version");
        const json& q = v.at("qemu");
        info.version = cat(q.at("major").get<int>(), '.', q.at("minor").get<int>(), '.',
                           q.at("micro").get<int>());
        info.package = v.at("package").get<std::string>();

        step = "qom-get /machine type";
        info.machine_type =
            qmp.execute("qom-get", {{"path", "/machine"}, {"property", "type"}}).get<std::string>();
        // QOM type names are "<machine>-machine"; -machine and migration use "<machine>".
        const std::string suffix = "-machine";
        if (info.machine_type.ends_with(suffix))
            info.machine_type.resize(info.machine_type.size() - suffix.size());

        step = "query-memory-size-summary";
        json mem = qmp.execute("query-memory-size-summary");
        info.ram_bytes = mem.at("base-memory").get<uint64_t>() +
                         mem.value("plugged-memory", uint64_t{0});

        step = "query-status";
        info.run_state = qmp.execute("query-status").at("status").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
        throw ProtocolError(cat("QMP ", qmp.socket_path(), ": unexpected reply to ", step, ": ",
                                e.what()));
    }
    std::string ramblock_text = qmp.human("info ramblock");
    try {
        info.ram_blocks = parse_ramblocks(ramblock_text);
    } catch (const ProtocolError& e) {
        throw ProtocolError(cat("QMP ", qmp.socket_path(), ": ", e.what()));
    }
    return info;
}

json to_json(const QemuInfo& info) {
    json blocks = json::array();
    for (const auto& b : info.ram_blocks)
        blocks.push_back(
            {{"name", b.name}, {"used_bytes", b.used_bytes}, {"page_size", b.page_size}});
    return {{"version", info.version},     {"package", info.package},
            {"machine_type", info.machine_type}, {"ram_bytes", info.ram_bytes},
            {"ram_blocks", blocks},        {"run_state", info.run_state}};
}

QemuInfo info_from_json(const json& j) {
    const char* what = "QemuInfo";
    want_obj(j, what);
    QemuInfo info;
    info.version = want_str(j, "version", what);
    info.package = want_str(j, "package", what);
    info.machine_type = want_str(j, "machine_type", what);
    info.ram_bytes = want_u64(j, "ram_bytes", what);
    info.run_state = want_str(j, "run_state", what);
    auto it = j.find("ram_blocks");
    if (it == j.end() || !it->is_array())
        throw ProtocolError(cat(what, ": field 'ram_blocks' missing or not an array"));
    for (const json& b : *it) {
        want_obj(b, "QemuInfo ram block");
        info.ram_blocks.push_back({want_str(b, "name", "QemuInfo ram block"),
                                   want_u64(b, "used_bytes", "QemuInfo ram block"),
                                   want_u64(b, "page_size", "QemuInfo ram block")});
    }
    return info;
}

MigrationStats parse_migration_stats(const json& qm) {
    want_obj(qm, "query-migrate");
    MigrationStats s;
    s.status = opt_str(qm, "status", "none");
    s.total_time_ms = opt_u64(qm, "total-time");
    s.setup_time_ms = opt_u64(qm, "setup-time");
    s.downtime_ms = opt_u64(qm, "downtime");
    s.expected_downtime_ms = opt_u64(qm, "expected-downtime");
    s.error_desc = opt_str(qm, "error-desc");
    // Present while auto-converge throttles the vCPUs (top level of the reply).
    s.cpu_throttle_percentage = static_cast<unsigned>(std::min<uint64_t>(opt_u64(qm, "cpu-throttle-percentage"), 100));
    auto ram = qm.find("ram");
    if (ram != qm.end() && !ram->is_null()) {
        want_obj(*ram, "query-migrate ram");
        s.has_ram = true;
        s.ram_transferred = opt_u64(*ram, "transferred");
        s.ram_remaining = opt_u64(*ram, "remaining");
        s.ram_total = opt_u64(*ram, "total");
        s.dirty_pages_rate = opt_u64(*ram, "dirty-pages-rate");
        s.dirty_sync_count = opt_u64(*ram, "dirty-sync-count");
        s.mbps = opt_double(*ram, "mbps");
        s.multifd_bytes = opt_u64(*ram, "multifd-bytes");
        s.page_size = opt_u64(*ram, "page-size");
        s.postcopy_requests = opt_u64(*ram, "postcopy-requests");
        s.postcopy_bytes = opt_u64(*ram, "postcopy-bytes");
    }
    return s;
}

MigrationStats completed_figures(QmpClient& qmp, MigrationStats stats, std::chrono::milliseconds patience) {
    auto until = std::chrono::steady_clock::now() + patience;
    while (stats.status == "completed" && stats.total_time_ms == 0 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        stats = parse_migration_stats(qmp.execute("query-migrate"));
    }
    return stats;
}

}  // namespace rmig::qemu
