#include "cli/args.hpp"

#include <cerrno>
#include <cstdlib>

namespace rmig::cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& with_value,
           const std::set<std::string>& flags) {
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (a.rfind("--", 0) != 0 || a == "--") {
            positional_.push_back(a);
            continue;
        }
        std::string name = a.substr(2), value;
        bool has_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        if (flags.count(name)) {
            if (has_value) throw UsageError(cat("option --", name, " takes no value"));
            flags_.insert(name);
        } else if (with_value.count(name)) {
            if (!has_value) {
                if (i + 1 >= argv.size()) throw UsageError(cat("option --", name, " needs a value"));
                value = argv[++i];
            }
            values_[name] = value;
        } else {
            throw UsageError(cat("unknown option --", name));
        }
    }
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

}  // namespace rmig::cli
