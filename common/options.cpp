#include "common/options.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>

#include "common/args.hpp"
#include "common/units.hpp"

namespace rmig {

namespace {

std::optional<uint64_t> parse_whole(const std::string& v) {
    if (v.empty() || v[0] < '0' || v[0] > '9') return std::nullopt;
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (*end != '\0' || errno != 0) return std::nullopt;
    return n;
}

std::optional<int64_t> parse_integer(const std::string& v) {
    if (v.empty() || std::isspace(static_cast<unsigned char>(v[0]))) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (*end != '\0' || errno != 0) return std::nullopt;
    return n;
}

std::optional<double> parse_real(const std::string& v) {
    if (v.empty() || std::isspace(static_cast<unsigned char>(v[0]))) return std::nullopt;
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (*end != '\0' || !std::isfinite(d)) return std::nullopt;
    return d;
}

// 600 -> "600", 0.25 -> "0.25".
std::string number_text(double d) {
    char buf[40];
    if (d == std::floor(d) && std::fabs(d) < 1e15)
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(d));
    else
        std::snprintf(buf, sizeof buf, "%g", d);
    return buf;
}

// The inverse of parse_size for round numbers: 1048576 -> "1M", 4097 -> "4097".
std::string size_text(double bytes) {
    if (!std::isfinite(bytes)) return "any";
    auto b = static_cast<uint64_t>(bytes);
    static const char* suffix[] = {"T", "G", "M", "K"};
    for (int i = 0; i < 4; ++i) {
        uint64_t unit = 1ULL << (10 * (4 - i));
        if (b >= unit && b % unit == 0) return cat(b / unit, suffix[i]);
    }
    return cat(b);
}

std::string value_text(const OptionSpec& s, double d) {
    return s.kind == OptionKind::size ? size_text(d) : number_text(d);
}

std::vector<std::string_view> split_choices(std::string_view choices) {
    std::vector<std::string_view> out;
    while (!choices.empty()) {
        auto bar = choices.find('|');
        out.push_back(choices.substr(0, bar));
        if (bar == std::string_view::npos) break;
        choices.remove_prefix(bar + 1);
    }
    return out;
}

// "a, b or c"
std::string list_text(const std::vector<std::string_view>& items, const char* last_sep = " or ") {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += i + 1 == items.size() ? last_sep : ", ";
        out += items[i];
    }
    return out;
}

const char* kind_noun(OptionKind k) {
    switch (k) {
    case OptionKind::whole: return "a whole number";
    case OptionKind::integer: return "a whole number (may be negative)";
    case OptionKind::size: return "a size";
    case OptionKind::real: return "a number";
    default: return "a value";
    }
}

// "from 2 to 4096", "at least 1", "" (any).
std::string range_text(const OptionSpec& s) {
    const bool low = s.kind == OptionKind::integer ? std::isfinite(s.min) : s.min > 0;
    const bool high = std::isfinite(s.max);
    if (low && high) return cat("from ", value_text(s, s.min), " to ", value_text(s, s.max));
    if (low) return cat("at least ", value_text(s, s.min));
    if (high) return cat("at most ", value_text(s, s.max));
    return "";
}

}  // namespace

const OptionSpec* CommandSpec::find(std::string_view option) const {
    for (const auto& g : groups)
        for (const auto& o : g.options)
            if (o.name == option) return &o;
    return nullptr;
}

const CommandSpec* ProgramSpec::find(std::string_view command) const {
    for (const auto& c : commands)
        if (c.name == command) return &c;
    return nullptr;
}

const OptionSpec* ProgramSpec::find_option(std::string_view option, const CommandSpec** in) const {
    for (const auto& c : commands)
        if (const OptionSpec* o = c.find(option)) {
            if (in) *in = &c;
            return o;
        }
    return nullptr;
}

void check_option_value(const OptionSpec& s, const std::string& v, const std::string& origin) {
    auto fail = [&](const std::string& why) { throw UsageError(cat(origin, why)); };
    double d = 0;
    switch (s.kind) {
    case OptionKind::flag:
    case OptionKind::text: return;
    case OptionKind::choice: {
        auto choices = split_choices(s.choices);
        for (auto c : choices)
            if (c == v) return;
        fail(cat("--", s.name, " '", v, "' is not valid: give ", list_text(choices)));
        return;
    }
    case OptionKind::whole:
        if (auto n = parse_whole(v)) d = static_cast<double>(*n);
        else fail(cat("option --", s.name, " needs a whole number, not '", v, "'"));
        break;
    case OptionKind::integer:
        if (auto n = parse_integer(v)) d = static_cast<double>(*n);
        else fail(cat("option --", s.name, " needs a whole number, not '", v, "'"));
        break;
    case OptionKind::real:
        if (auto n = parse_real(v)) d = *n;
        else fail(cat("option --", s.name, " needs a number, not '", v, "'"));
        break;
    case OptionKind::size:
        try {
            d = static_cast<double>(parse_size(v, cat("--", s.name)));
        } catch (const UsageError&) {
            throw;
        } catch (const Error& e) {
            fail(e.what());
        }
        break;
    }
    if (d < s.min || d > s.max)
        fail(cat("--", s.name, " ", v, " is out of range: give ", kind_noun(s.kind), " ", range_text(s),
                 s.kind == OptionKind::size ? " (K/M/G suffixes)" : ""));
}

double option_number(const OptionSpec& s, const std::string& v) {
    switch (s.kind) {
    case OptionKind::whole:
    case OptionKind::size: return static_cast<double>(option_unsigned(s, v));
    case OptionKind::integer: return static_cast<double>(parse_integer(v).value_or(0));
    case OptionKind::real: return parse_real(v).value_or(0);
    default: return 0;
    }
}

uint64_t option_unsigned(const OptionSpec& s, const std::string& v) {
    if (s.kind == OptionKind::size) return parse_size(v, cat("--", s.name));
    return parse_whole(v).value_or(0);
}

std::string default_text(const OptionSpec& s) {
    switch (s.kind) {
    case OptionKind::flag: return "";
    case OptionKind::text:
    case OptionKind::choice: return std::string(s.text_default);
    default: return value_text(s, s.number_default);
    }
}

namespace {

// Appends `words` wrapped at 79 columns, continuation lines indented to `indent`.
void wrap(std::string& out, std::string_view words, size_t column, size_t indent) {
    constexpr size_t kWidth = 79;
    bool first = true;
    while (!words.empty()) {
        auto sp = words.find(' ');
        std::string_view w = words.substr(0, sp);
        words = sp == std::string_view::npos ? std::string_view{} : words.substr(sp + 1);
        if (w.empty()) continue;
        if (!first && column + 1 + w.size() > kWidth) {
            out += '\n';
            out.append(indent, ' ');
            column = indent;
        } else if (!first) {
            out += ' ';
            ++column;
        }
        out += w;
        column += w.size();
        first = false;
    }
}

std::string entry(const OptionSpec& s) {
    constexpr size_t kHelpColumn = 25;
    std::string left = cat("  --", s.name);
    if (!s.metavar.empty()) left += cat(" ", s.metavar);
    std::string out = left;
    if (left.size() + 2 > kHelpColumn) out.append(1, '\n').append(kHelpColumn, ' ');
    else out += std::string(kHelpColumn - left.size(), ' ');
    std::string text(s.help);
    std::vector<std::string> notes;
    if (s.kind == OptionKind::choice) notes.push_back(list_text(split_choices(s.choices)));
    else if (auto r = range_text(s); !r.empty() && s.kind != OptionKind::flag && s.kind != OptionKind::text)
        notes.push_back(r);
    if (s.required) notes.push_back("required");
    else if (s.default_note == "-") {
    } else if (!s.default_note.empty()) notes.push_back(cat("default ", s.default_note));
    else if (auto d = default_text(s); !d.empty()) notes.push_back(cat("default ", d));
    for (size_t i = 0; i < notes.size(); ++i) text.append(i == 0 ? "; " : ", ").append(notes[i]);
    wrap(out, text, kHelpColumn, kHelpColumn);
    return out + "\n";
}

}  // namespace

std::string group_help(const OptionGroup& g) {
    std::string out;
    if (!g.heading.empty()) out += cat(g.heading, ":\n");
    for (const auto& o : g.options) out += entry(o);
    return out;
}

std::string command_help(const ProgramSpec& program, const CommandSpec& c) {
    std::string out = cat("usage: ", program.name, c.name.empty() ? "" : " ", c.name, " ", c.synopsis, "\n");
    if (!c.about.empty()) out += cat("\n", c.about, c.about.back() == '\n' ? "" : "\n");
    for (const auto& g : c.groups) out.append(1, '\n').append(group_help(g));
    std::string settable;
    for (const auto& g : c.groups)
        for (const auto& o : g.options)
            if (o.profile) settable += cat(settable.empty() ? "" : ", ", "--", o.name);
    if (!settable.empty() && c.find("profile")) {
        out += "\n";
        wrap(out, cat("A --profile may set ", settable, "."), 0, 0);
        out += "\n";
    }
    return out;
}

std::string program_help(const ProgramSpec& program, std::string_view about) {
    std::string out;
    for (size_t i = 0; i < program.commands.size(); ++i) {
        const auto& c = program.commands[i];
        out += cat(i == 0 ? "usage: " : "       ", program.name, " ", c.name, " ", c.synopsis, "\n");
    }
    if (!about.empty()) out += cat("\n", about, about.back() == '\n' ? "" : "\n");
    // Each command's own groups first, then the shared ones, each once.
    std::map<const OptionSpec*, int> users;
    for (const auto& c : program.commands)
        for (const auto& g : c.groups) ++users[g.options.data()];
    std::set<const OptionSpec*> shown;
    for (bool shared : {false, true})
        for (const auto& c : program.commands)
            for (const auto& g : c.groups)
                if (!g.options.empty() && (users[g.options.data()] > 1) == shared &&
                    shown.insert(g.options.data()).second)
                    out.append(1, '\n').append(group_help(g));
    return out;
}

}  // namespace rmig
