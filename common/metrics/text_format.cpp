#include "common/metrics/text_format.hpp"

#include <charconv>
#include <cmath>
#include <set>

#include "common/error.hpp"

namespace rmig::metrics {

const char* to_string(Type t) { return t == Type::counter ? "counter" : "gauge"; }

namespace {

bool letter_or_underscore(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool valid_metric_name(std::string_view name) {
    if (name.empty() || !(letter_or_underscore(name[0]) || name[0] == ':')) return false;
    for (char c : name)
        if (!(letter_or_underscore(c) || digit(c) || c == ':')) return false;
    return true;
}

bool valid_label_name(std::string_view name) {
    if (name.empty() || !letter_or_underscore(name[0]) || name.starts_with("__")) return false;
    for (char c : name)
        if (!(letter_or_underscore(c) || digit(c))) return false;
    return true;
}

void check_metric_name(std::string_view name) {
    if (!valid_metric_name(name))
        throw Error(cat("metric name '", name, "' is not valid in the Prometheus format: use letters, digits, "
                        "'_' and ':', not starting with a digit"));
}

void check_labels(std::string_view metric, const Labels& labels) {
    std::set<std::string_view> seen;
    for (const auto& [name, value] : labels) {
        if (!valid_label_name(name))
            throw Error(cat("metric ", metric, ": label name '", name, "' is not valid: use letters, digits and '_', "
                            "not starting with a digit or '__'"));
        if (!seen.insert(name).second) throw Error(cat("metric ", metric, ": label '", name, "' given twice"));
    }
}

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string escape_help(std::string_view help) {
    std::string out;
    out.reserve(help.size());
    for (char c : help) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string format_value(const std::variant<uint64_t, double>& value) {
    if (const auto* whole = std::get_if<uint64_t>(&value)) return std::to_string(*whole);
    double d = std::get<double>(value);
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);  // shortest form that reads back exactly
    return ec == std::errc() ? std::string(buf, end) : "NaN";
}

std::string render(const std::vector<FamilySnapshot>& families) {
    std::string out;
    for (const auto& f : families) {
        if (f.samples.empty()) continue;
        out += cat("# HELP ", f.name, ' ', escape_help(f.help), "\n# TYPE ", f.name, ' ', to_string(f.type), '\n');
        for (const auto& s : f.samples) {
            out += f.name;
            if (!s.labels.empty()) {
                out += '{';
                for (size_t i = 0; i < s.labels.size(); ++i) {
                    if (i) out += ',';
                    out += cat(s.labels[i].first, "=\"", escape_label_value(s.labels[i].second), '"');
                }
                out += '}';
            }
            out += cat(' ', format_value(s.value), '\n');
        }
    }
    return out;
}

}  // namespace rmig::metrics
