#include "transport/backend_settings.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "common/args.hpp"
#include "transport/backend.hpp"

namespace rmig::transport {

const OptionSpec& option_in(const OptionGroup& group, std::string_view name) {
    for (const auto& o : group.options)
        if (o.name == name) return o;
    throw std::logic_error(cat("'", name, "' is not an option of the table '", group.heading, "'"));
}

void BackendSettings::set(std::string_view name, const std::string& value, const std::string& origin) {
    const Backend* b = backend_of_option(name);
    if (!b) {
        std::string known;
        for (const auto& be : backends())
            for (const auto& o : be.description->options.options) known += cat(known.empty() ? "" : ", ", o.name);
        throw UsageError(cat(origin, "'", name, "' is not an option of any transport backend (they are: ", known,
                             ")"));
    }
    check_option_value(option_in(b->description->options, name), value, origin);
    values_.insert_or_assign(std::string(name), value);
}

void BackendSettings::set(std::string_view name, double value) {
    char buf[40];
    if (value == std::floor(value) && std::fabs(value) < 1e15)
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(value));
    else
        std::snprintf(buf, sizeof buf, "%.17g", value);
    set(name, std::string(buf));
}

const std::string* BackendSettings::find(std::string_view name) const {
    auto it = values_.find(name);
    return it == values_.end() ? nullptr : &it->second;
}

std::string BackendSettings::text(const OptionGroup& group, std::string_view name) const {
    const OptionSpec& s = option_in(group, name);
    const std::string* v = find(name);
    return v ? *v : std::string(s.text_default);
}

uint64_t BackendSettings::whole(const OptionGroup& group, std::string_view name) const {
    const OptionSpec& s = option_in(group, name);
    const std::string* v = find(name);
    return v ? option_unsigned(s, *v) : static_cast<uint64_t>(s.number_default);
}

double BackendSettings::real(const OptionGroup& group, std::string_view name) const {
    const OptionSpec& s = option_in(group, name);
    const std::string* v = find(name);
    return v ? option_number(s, *v) : s.number_default;
}

}  // namespace rmig::transport
