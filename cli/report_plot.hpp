// Draws an rmig migrate report's timeline with gnuplot: throughput, dirty rate
// and remaining bytes over time, each QEMU round marked, the switchover and
// its blackout as a shaded band.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace rmig::cli {

// The gnuplot script for `report` (which has a timeline with samples),
// writing to `output`: PNG when its name ends in .png, else SVG.
std::string gnuplot_script(const nlohmann::json& report, const std::string& output);

// Renders `report` to `out`. Throws ReportError (report_command.hpp):
// kReportNoTimeline when it has no timeline samples, kReportPlotFailed when
// gnuplot is not installed or fails, or `out` cannot be written.
void plot_report(const nlohmann::json& report, const std::string& out);

// An executable `name` in $PATH.
std::optional<std::string> find_program(const std::string& name);

}  // namespace rmig::cli
