// The Prometheus text exposition format, version 0.0.4: what a scrape of
// /metrics returns. Names are checked when a metric is declared (registry),
// so render() never emits a line a scraper would reject.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace rmig::metrics {

// Ordered name="value" pairs; the order is kept in the output.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Type { counter, gauge };
const char* to_string(Type t);

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_metric_name(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__" (reserved by Prometheus).
bool valid_label_name(std::string_view name);
// Throws Error naming the metric and what is wrong: a bad metric or label
// name, or a label given twice.
void check_metric_name(std::string_view name);
void check_labels(std::string_view metric, const Labels& labels);

// Label values: backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);
// HELP text: backslash and newline escaped (quotes stay as they are).
std::string escape_help(std::string_view help);
// Integers exactly; doubles in their shortest exact form; NaN, +Inf, -Inf.
std::string format_value(const std::variant<uint64_t, double>& value);

struct Sample {
    Labels labels;
    std::variant<uint64_t, double> value;  // counters: whole numbers
};

struct FamilySnapshot {
    std::string name;
    std::string help;
    Type type = Type::gauge;
    std::vector<Sample> samples;
};

// # HELP / # TYPE, then one line per sample. A family without samples is
// left out (nothing to say yet).
std::string render(const std::vector<FamilySnapshot>& families);

// The Content-Type of render()'s output.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace rmig::metrics
