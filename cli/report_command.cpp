#include "cli/report_command.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/report_plot.hpp"
#include "common/exit_codes.hpp"
#include "common/units.hpp"

namespace rmig::cli {

using nlohmann::json;

namespace {

using K = OptionKind;

// The members every `rmig migrate --json` report has had, and their types.
bool is_migrate_report(const json& j) {
    return j.is_object() && j.contains("outcome") && j["outcome"].is_string() && j.contains("qemu") &&
           j["qemu"].is_object() && j.contains("blackout") && j["blackout"].is_object() && j.contains("channels") &&
           j["channels"].is_array();
}

// j[key], or null when j is no object or has no such member.
const json& member(const json& j, const char* key) {
    static const json kNull;
    if (!j.is_object()) return kNull;
    auto it = j.find(key);
    return it == j.end() ? kNull : *it;
}

json number_or_null(const json& j, const char* key) {
    const json& v = member(j, key);
    return v.is_number() ? v : json(nullptr);
}

template <class T>
T at_or(const json& j, const char* key, T fallback) {
    const json& v = member(j, key);
    return v.is_number() ? v.get<T>() : fallback;
}

}  // namespace

std::span<const OptionSpec> report_options() {
    static const OptionSpec kOptions[] = {
        {.name = "plot", .metavar = "OUT.svg|OUT.png",
         .help = "also draw the migration's timeline with gnuplot: throughput, dirty rate and remaining bytes "
                 "over time, QEMU's rounds, the switchover and its blackout (PNG if OUT ends in .png, else SVG)"},
        {.name = "json", .kind = K::flag, .help = "print the summary as one JSON object instead of text"},
        {.name = "help", .kind = K::flag, .help = "this text"},
    };
    return kOptions;
}

json load_report(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw ReportError(kReportUnreadable, cat("cannot read ", path, ": ", std::strerror(errno)));
    std::stringstream text;
    text << in.rdbuf();
    json j;
    try {
        j = json::parse(text.str());
    } catch (const json::parse_error& e) {
        throw ReportError(kReportUnreadable, cat(path, " is not JSON (", e.what(), ")"));
    }
    if (!is_migrate_report(j)) {
        bool receive = j.is_object() && j.contains("final_state") && j.contains("ok");
        throw ReportError(kReportUnreadable,
                          cat(path, " is not an rmig migrate report (it has no 'outcome', 'qemu', 'blackout' and "
                                    "'channels')",
                              receive ? "; it looks like rmig receive's, which has no timeline" : "",
                              ": rmig report reads what `rmig migrate --json FILE` writes"));
    }
    return j;
}

json report_summary(const json& r, const std::string& path) {
    const json& q = r["qemu"];
    const json& b = r["blackout"];
    uint64_t sent = 0, wire = 0;
    for (const auto& c : r["channels"]) {
        sent += at_or<uint64_t>(c, "sent_bytes", 0);
        wire += at_or<uint64_t>(c, "wire_bytes", 0);
    }
    json compression = nullptr;
    if (const json& c = member(r, "compression"); c.is_object())
        compression = {{"mode", c.value("mode", "none")}, {"ratio", number_or_null(c, "ratio")}};
    const json& flows = member(r, "flows");
    json timeline = nullptr;
    const json& t = member(r, "timeline");
    if (const json& s = member(t, "samples"); s.is_array()) {
        timeline = {{"samples", s.size()},
                    {"first_s", s.empty() ? json(nullptr) : number_or_null(s.front(), "t_s")},
                    {"last_s", s.empty() ? json(nullptr) : number_or_null(s.back(), "t_s")},
                    {"switchover_stop_s", number_or_null(t, "switchover_stop_s")}};
    }
    return {{"file", path},
            {"outcome", r["outcome"]},
            {"error", r.value("error", "")},
            {"total_time_ms", number_or_null(q, "total_time_ms")},
            {"wall_s", number_or_null(r, "wall_s")},
            {"blackout_ms", number_or_null(b, "ms")},
            {"blackout_uncertainty_ms", number_or_null(b, "uncertainty_ms")},
            {"stop_to_loaded_ms", number_or_null(b, "stop_to_loaded_ms")},
            {"qemu_downtime_ms", number_or_null(q, "downtime_ms")},
            {"downtime_limit_ms", number_or_null(member(r, "settings"), "downtime_limit_ms")},
            {"ram_total_bytes", at_or<uint64_t>(q, "ram_total_bytes", 0)},
            {"ram_transferred_bytes", at_or<uint64_t>(q, "ram_transferred_bytes", 0)},
            {"link_bytes", sent},
            {"wire_bytes", wire},
            {"rounds", at_or<uint64_t>(q, "dirty_sync_count", 0)},
            {"compression", compression},
            {"reconnects", at_or<uint64_t>(flows, "reconnects", 0)},
            {"control_reopened", at_or<uint64_t>(flows, "control_reopened", 0)},
            {"timeline", timeline}};
}

std::string summary_text(const json& s) {
    auto ms = [&](const char* key) { return format_millis(s[key].get<double>()); };
    std::string out = cat("rmig migrate report ", s["file"].get<std::string>(), "\n");
    out += cat("  outcome      ", s["outcome"].get<std::string>());
    if (auto e = s["error"].get<std::string>(); !e.empty()) out += cat(": ", e);
    out += "\n";
    out += "  total time   ";
    if (s["total_time_ms"].is_number() && s["total_time_ms"].get<double>() > 0) out += cat(ms("total_time_ms"), " (QEMU)");
    if (s["wall_s"].is_number()) out += cat(s["total_time_ms"].is_number() ? ", " : "",
                                            format_millis(s["wall_s"].get<double>() * 1000), " wall");
    out += "\n";
    std::string limit = s["downtime_limit_ms"].is_number() ? cat("; limit ", ms("downtime_limit_ms")) : "";
    std::string qemu = s["qemu_downtime_ms"].is_number() ? cat("; QEMU's downtime ", ms("qemu_downtime_ms")) : "";
    // Blackouts are tens of milliseconds: to the hundredth, like the
    // clock offset's uncertainty.
    auto fine_ms = [&](const char* key) {
        char text[48];
        double v = s[key].is_number() ? s[key].get<double>() : 0;
        if (v >= 1000) return format_millis(v);
        std::snprintf(text, sizeof text, "%.2f ms", v);
        return std::string(text);
    };
    if (s["blackout_ms"].is_number())
        out += cat("  blackout     ", fine_ms("blackout_ms"), " (guest stopped -> resumed on the destination, +/- ",
                   fine_ms("blackout_uncertainty_ms"), qemu, limit, ")\n");
    else if (s["stop_to_loaded_ms"].is_number())
        out += cat("  blackout     not resumed by rmig; guest stopped -> loaded on the destination ",
                   fine_ms("stop_to_loaded_ms"), qemu, limit, "\n");
    else
        out += "  blackout     none measured (the guest never switched over, or no QMP event timestamps)\n";
    out += cat("  bytes        guest RAM ", format_bytes(s["ram_total_bytes"].get<double>()), ", QEMU sent ",
               format_bytes(s["ram_transferred_bytes"].get<double>()), "; over the link ",
               format_bytes(s["link_bytes"].get<double>()), " (", format_bytes(s["wire_bytes"].get<double>()),
               " on the wire)\n");
    out += cat("  rounds       ", s["rounds"].get<uint64_t>(), " (QEMU's dirty-bitmap syncs)\n");
    if (const auto& c = s["compression"]; c.is_object()) {
        out += cat("  compression  ", c["mode"].get<std::string>());
        if (c["ratio"].is_number()) {
            char ratio[32];
            std::snprintf(ratio, sizeof ratio, "%.3f", c["ratio"].get<double>());
            out += cat(", wire/raw ", ratio);
        }
        out += "\n";
    }
    out += cat("  reconnects   ", s["reconnects"].get<uint64_t>(), " flow",
               s["reconnects"].get<uint64_t>() == 1 ? "" : "s", ", ", s["control_reopened"].get<uint64_t>(),
               " control\n");
    if (const auto& t = s["timeline"]; t.is_object()) {
        out += cat("  timeline     ", t["samples"].get<size_t>(), " samples");
        if (t["last_s"].is_number()) {
            char span[64];
            std::snprintf(span, sizeof span, " from %.2f s to %.2f s", t["first_s"].get<double>(),
                          t["last_s"].get<double>());
            out += span;
        }
        if (t["switchover_stop_s"].is_number()) {
            char at[64];
            std::snprintf(at, sizeof at, ", switchover at %.2f s", t["switchover_stop_s"].get<double>());
            out += at;
        }
        out += "\n";
    } else {
        out += "  timeline     none (written by an rmig from before timelines; nothing to plot)\n";
    }
    return out;
}

int report_command(const Args& a) {
    const auto& pos = a.positional();
    if (pos.size() != 1) throw UsageError(pos.empty() ? "expected the report FILE.json" : "expected one FILE.json");
    try {
        json report = load_report(pos[0]);
        json summary = report_summary(report, pos[0]);
        if (a.flag("json"))
            std::printf("%s\n", summary.dump(2).c_str());
        else
            std::fputs(summary_text(summary).c_str(), stdout);
        std::fflush(stdout);
        if (auto out = a.get("plot")) {
            plot_report(report, *out);
            if (!a.flag("json")) std::printf("  plot         %s\n", out->c_str());
        }
        return exit_code::kOk;
    } catch (const ReportError& e) {
        std::fprintf(stderr, "rmig report: error: %s\n", e.what());
        return e.code();
    }
}

}  // namespace rmig::cli
