#include "common/args.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <stdexcept>

namespace rmig {

namespace {

enum class Takes { value, nothing, unknown };

// One pass over argv; `unknown` throws for a name `takes` does not know.
void tokenize(const std::vector<std::string>& argv, const std::function<Takes(const std::string&)>& takes,
              const std::function<void(const std::string&)>& unknown,
              const std::function<std::string(const std::string&)>& missing_value,
              std::map<std::string, std::string>& values, std::set<std::string>& flags,
              std::vector<std::string>& positional) {
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (a.rfind("--", 0) != 0 || a == "--") {
            positional.push_back(a);
            continue;
        }
        std::string name = a.substr(2), value;
        bool has_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        switch (takes(name)) {
        case Takes::nothing:
            if (has_value) throw UsageError(cat("option --", name, " takes no value"));
            flags.insert(name);
            break;
        case Takes::value:
            if (!has_value) {
                if (i + 1 >= argv.size()) throw UsageError(missing_value(name));
                value = argv[++i];
            }
            values[name] = value;
            break;
        case Takes::unknown: unknown(name); throw UsageError(cat("unknown option --", name));
        }
    }
}

// Edits to turn `a` into `b` (for "did you mean").
size_t distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

}  // namespace

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& with_value,
           const std::set<std::string>& flags) {
    tokenize(
        argv,
        [&](const std::string& name) {
            return flags.count(name) ? Takes::nothing : with_value.count(name) ? Takes::value : Takes::unknown;
        },
        [](const std::string&) {}, [](const std::string& name) { return cat("option --", name, " needs a value"); },
        values_, flags_, positional_);
}

Args::Args(const std::vector<std::string>& argv, const ProgramSpec& program, const CommandSpec& command)
    : program_(&program), command_(&command) {
    const std::string where = command.name.empty() ? std::string(program.name)
                                                   : cat(program.name, " ", command.name);
    auto unknown = [&](const std::string& name) {
        const CommandSpec* other = nullptr;
        if (program.find_option(name, &other) && other != &command)
            throw UsageError(cat("--", name, " is an option of '", program.name, " ", other->name, "', not of '",
                                 where, "'"));
        std::string best;
        size_t best_d = 3;  // suggest only close names
        for (const auto& g : command.groups)
            for (const auto& o : g.options)
                if (size_t d = distance(name, o.name); d < best_d) best_d = d, best = o.name;
        if (!best.empty()) throw UsageError(cat("unknown option --", name, "; did you mean --", best, "?"));
    };
    auto missing_value = [&](const std::string& name) {
        const OptionSpec* s = command.find(name);
        return cat("option --", name, " needs a value: --", name, " ", s && !s->metavar.empty() ? s->metavar : "VALUE");
    };
    tokenize(
        argv,
        [&](const std::string& name) {
            const OptionSpec* s = command.find(name);
            return !s ? Takes::unknown : s->kind == OptionKind::flag ? Takes::nothing : Takes::value;
        },
        unknown, missing_value, values_, flags_, positional_);
    for (const auto& [name, value] : values_) check_option_value(*command.find(name), value);
}

std::optional<std::string> Args::get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
}

std::string Args::get_or(const std::string& name, const std::string& def) const {
    return get(name).value_or(def);
}

std::string Args::required(const std::string& name) const {
    auto v = get(name);
    if (!v) throw UsageError(cat("missing required option --", name));
    return *v;
}

uint64_t Args::number(const std::string& name, uint64_t def) const {
    auto v = get(name);
    if (!v) return def;
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || errno != 0 || (*v)[0] == '-')
        throw UsageError(cat("option --", name, " needs a whole number, not '", *v, "'"));
    return n;
}

void Args::set_default(const std::string& name, const std::string& value, const std::string& origin) {
    if (command_) check_option_value(spec(name), value, origin);
    values_.emplace(name, value);
}

const OptionSpec& Args::spec(const std::string& name) const {
    const OptionSpec* s = command_ ? command_->find(name) : nullptr;
    if (!s) throw std::logic_error(cat("--", name, " is not in the option table of this command"));
    return *s;
}

std::string Args::text(const std::string& name) const {
    const OptionSpec& s = spec(name);
    if (auto v = get(name)) return *v;
    return std::string(s.text_default);
}

uint64_t Args::whole(const std::string& name) const {
    const OptionSpec& s = spec(name);
    auto v = get(name);
    return v ? option_unsigned(s, *v) : static_cast<uint64_t>(s.number_default);
}

int64_t Args::integer(const std::string& name) const {
    const OptionSpec& s = spec(name);
    auto v = get(name);
    return static_cast<int64_t>(v ? option_number(s, *v) : s.number_default);
}

double Args::real(const std::string& name) const {
    const OptionSpec& s = spec(name);
    auto v = get(name);
    return v ? option_number(s, *v) : s.number_default;
}

void Args::check_required() const {
    if (!command_) return;
    for (const auto& g : command_->groups)
        for (const auto& o : g.options)
            if (o.required && !get(std::string(o.name)))
                throw UsageError(cat("missing required option --", o.name, " ", o.metavar));
}

}  // namespace rmig
