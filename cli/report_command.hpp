// `rmig report FILE.json [--plot OUT.svg|OUT.png] [--json]`: a short summary
// of what `rmig migrate --json FILE` wrote, and a picture of its timeline.
#pragma once

#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "common/args.hpp"
#include "common/error.hpp"
#include "common/options.hpp"

namespace rmig::cli {

// rmig report's exit codes: 0 shown (and plotted), 2 bad arguments, and
inline constexpr int kReportUnreadable = 1;   // missing, not JSON, or not an rmig migrate report
inline constexpr int kReportNoTimeline = 3;   // --plot, but the report has no timeline (older rmig, or nothing moved)
inline constexpr int kReportPlotFailed = 4;   // --plot: gnuplot missing or failed, or OUT not writable

// A failure with its exit code.
class ReportError : public Error {
public:
    ReportError(int code, const std::string& what) : Error(what), code_(code) {}
    int code() const { return code_; }

private:
    int code_;
};

std::span<const OptionSpec> report_options();

// An rmig migrate report, read and checked: throws ReportError(kReportUnreadable).
nlohmann::json load_report(const std::string& path);
// The figures the summary shows, as JSON (what --json prints).
nlohmann::json report_summary(const nlohmann::json& report, const std::string& path);
std::string summary_text(const nlohmann::json& summary);

// `a` parsed with report_options(); returns the exit code; throws UsageError
// for bad arguments.
int report_command(const Args& a);

}  // namespace rmig::cli
