#include "cli/report_plot.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "cli/report_command.hpp"
#include "common/process.hpp"
#include "common/temp_dir.hpp"
#include "common/units.hpp"
#include "qemu-plugin/timeline.hpp"

namespace rmig::cli {

using nlohmann::json;

namespace {

constexpr std::chrono::seconds kGnuplotPatience{60};
// A blackout of 50 ms in a 60 s run would be a hairline: the band is drawn
// at least this share of the time axis wide (its label gives the real figure).
constexpr double kMinBandShare = 0.006;
// Round labels closer than this share of the time axis to the previous one
// are left out (the round's line is still drawn).
constexpr double kMinLabelGapShare = 0.03;

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

// A double-quoted gnuplot string.
std::string gp_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

// Blackouts are tens of milliseconds: to the tenth below a second.
std::string fine_millis(double ms) {
    if (ms >= 1000) return format_millis(ms);
    char text[32];
    std::snprintf(text, sizeof text, "%.1f ms", ms);
    return text;
}

bool ends_with(const std::string& s, std::string_view tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// j[key], or null when j has no such member (a const json's operator[] must not miss).
const json& member(const json& j, const char* key) {
    static const json kNull;
    if (!j.is_object()) return kNull;
    auto it = j.find(key);
    return it == j.end() ? kNull : *it;
}

std::vector<qemu::TimelineSample> samples_of(const json& report) {
    std::vector<qemu::TimelineSample> out;
    const json& samples = member(member(report, "timeline"), "samples");
    if (samples.is_array())
        for (const auto& s : samples) out.push_back(qemu::timeline_sample_from_json(s));
    return out;
}

std::optional<double> number_at(const json& j, const char* key) {
    const json& v = member(j, key);
    if (v.is_number()) return v.get<double>();
    return std::nullopt;
}

// "rmig migrate completed: 256 MiB in 3.05 s, 5 rounds, blackout 85 ms"
std::string title_of(const json& report) {
    const json& q = member(report, "qemu");
    std::string title = cat("rmig migrate ", report.value("outcome", "?"), ": ",
                            format_bytes(q.value("ram_total_bytes", 0.0)), " guest");
    if (double ms = q.value("total_time_ms", 0.0); ms > 0) title += cat(" in ", format_millis(ms));
    title += cat(", ", q.value("dirty_sync_count", 0), " rounds");
    if (auto b = number_at(member(report, "blackout"), "ms")) title += cat(", blackout ", fine_millis(*b));
    return title;
}

}  // namespace

std::optional<std::string> find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "");
    for (std::string dir; std::getline(dirs, dir, ':');) {
        std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate)) return candidate;
    }
    return std::nullopt;
}

std::string gnuplot_script(const json& report, const std::string& output) {
    auto samples = samples_of(report);
    const json& timeline = member(report, "timeline");
    const json& blackout = member(report, "blackout");
    double t_end = samples.empty() ? 1 : samples.back().t_s;

    // The switchover: the guest's STOP on the timeline's clock, and its
    // blackout (to RESUME, or to loaded when rmig did not resume it).
    std::optional<double> stop_s = number_at(timeline, "switchover_stop_s");
    std::optional<double> band_ms = number_at(blackout, "ms");
    std::string band_label;
    if (band_ms) {
        band_label = cat("switchover: blackout ", fine_millis(*band_ms));
    } else if ((band_ms = number_at(blackout, "stop_to_loaded_ms"))) {
        band_label = cat("switchover: stopped -> loaded ", fine_millis(*band_ms), " (not resumed)");
    } else {
        band_label = "switchover (blackout not measured)";
    }
    if (stop_s) t_end = std::max(t_end, *stop_s + band_ms.value_or(0) / 1000);
    double x_max = t_end * 1.02 + 0.05;

    std::ostringstream s;
    bool png = ends_with(output, ".png");
    s << (png ? "set terminal pngcairo size 1200,650 noenhanced font 'sans,10'\n"
              : "set terminal svg size 1200,650 dynamic noenhanced font 'sans,11' background rgb 'white'\n");
    s << "set output " << gp_string(output) << "\n"
      << "set title " << gp_string(title_of(report)) << "\n"
      << "set xlabel 'seconds since rmig migrate started'\n"
      << "set ylabel 'MB/s'\nset y2label 'remaining (MiB)'\n"
      << "set xrange [0:" << num(x_max) << "]\nset yrange [0:*]\nset y2range [0:*]\n"
      << "set ytics nomirror\nset y2tics\nset grid ytics lc rgb '#dddddd'\n"
      << "set key below horizontal\nset border 3 front\n";

    // Rounds: a dashed line where QEMU's dirty-sync count goes up.
    int label_id = 1;
    double last_label = -1e9;
    for (size_t i = 1; i < samples.size(); ++i) {
        if (samples[i].dirty_sync_count <= samples[i - 1].dirty_sync_count) continue;
        double t = samples[i].t_s;
        s << "set arrow from " << num(t) << ", graph 0 to " << num(t)
          << ", graph 1 nohead dashtype 2 linecolor rgb '#888888' back\n";
        if (t - last_label >= kMinLabelGapShare * x_max) {
            s << "set label " << label_id++ << " " << gp_string(cat("round ", samples[i].dirty_sync_count)) << " at "
              << num(t) << ", graph 0.98 rotate by 90 right offset 0.8,0 textcolor rgb '#555555' font ',9'\n";
            last_label = t;
        }
    }
    if (stop_s) {
        double width = std::max(band_ms.value_or(0) / 1000, kMinBandShare * x_max);
        s << "set object 1 rect from " << num(*stop_s) << ", graph 0 to " << num(*stop_s + width)
          << ", graph 1 behind fillcolor rgb '#e06666' fillstyle transparent solid 0.35 noborder\n"
          << "set label " << label_id++ << " " << gp_string(band_label) << " at " << num(*stop_s)
          << ", graph 0.5 rotate by 90 center offset -1,0 textcolor rgb '#b03030'\n";
    }

    s << "$timeline << EOD\n";
    for (const auto& x : samples)
        s << num(x.t_s) << " " << num(x.throughput / 1e6) << " " << num(x.dirty_rate / 1e6) << " "
          << num(double(x.ram_remaining) / (1 << 20)) << "\n";
    s << "EOD\n";
    s << "plot $timeline using 1:2 with lines linewidth 2 linecolor rgb '#1f77b4' title 'throughput (QEMU, MB/s)', \\\n"
      << "     $timeline using 1:3 with lines linewidth 2 linecolor rgb '#ff7f0e' title 'dirty rate (MB/s)', \\\n"
      << "     $timeline using 1:4 axes x1y2 with lines linewidth 2 linecolor rgb '#2ca02c' "
         "title 'remaining (MiB, right axis)'\n";
    return s.str();
}

void plot_report(const json& report, const std::string& out) {
    if (!report.contains("timeline"))
        throw ReportError(kReportNoTimeline,
                          "the report has no timeline: it was written by an rmig from before timelines were "
                          "recorded; migrate again with this rmig (rmig migrate --json FILE) to plot it");
    if (samples_of(report).empty())
        throw ReportError(kReportNoTimeline,
                          cat("the report's timeline has no samples: the migration never started (outcome ",
                              report.value("outcome", "?"), "); nothing to plot"));
    auto gnuplot = find_program("gnuplot");
    if (!gnuplot)
        throw ReportError(kReportPlotFailed,
                          "gnuplot is not installed (not found in $PATH): rmig report --plot draws with it; "
                          "install Debian's gnuplot-nox (apt install gnuplot-nox)");
    TempDir dir("rmig-plot");
    bool png = ends_with(out, ".png");
    std::string image = dir.path() + (png ? "/plot.png" : "/plot.svg");
    std::string script = dir.path() + "/plot.gp";
    std::string log = dir.path() + "/gnuplot.log";
    {
        std::ofstream f(script);
        f << gnuplot_script(report, image);
        if (!f) throw ReportError(kReportPlotFailed, cat("cannot write the gnuplot script to ", script));
    }
    Process proc({*gnuplot, script}, {log, "=stdout"});
    auto status = proc.wait_for(kGnuplotPatience);
    std::string said;
    {
        std::stringstream ss;
        ss << std::ifstream(log).rdbuf();
        said = ss.str();
    }
    if (!status) {
        proc.stop();
        throw ReportError(kReportPlotFailed, cat(*gnuplot, " did not finish within ", kGnuplotPatience.count(), " s"));
    }
    if (*status != 0 || !std::filesystem::exists(image))
        throw ReportError(kReportPlotFailed, cat(*gnuplot, " failed (exit ", *status, ")", said.empty() ? "" : ": ", said));
    std::error_code ec;
    std::filesystem::copy_file(image, out, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) throw ReportError(kReportPlotFailed, cat("cannot write the plot to ", out, ": ", ec.message()));
}

}  // namespace rmig::cli
