// The list of backends: generated from the build's rmig_transport_backend()
// calls (transport/CMakeLists.txt), so this file names none of them.
#include <vector>

#include "common/error.hpp"
#include "transport/backend.hpp"
#include "transport/backends.inc"
#include "transport/channel.hpp"

namespace rmig::transport {

std::span<const Backend> backends() { return generated_backends(); }

const Backend* find_backend(std::string_view scheme) {
    for (const auto& b : backends())
        if (b.description->scheme == scheme) return &b;
    return nullptr;
}

const Backend* backend_of_option(std::string_view name) {
    for (const auto& b : backends())
        for (const auto& o : b.description->options.options)
            if (o.name == name) return &b;
    return nullptr;
}

std::string compiled_in_schemes() {
    std::string out;
    for (const auto& b : backends())
        if (b.compiled_in()) out += cat(out.empty() ? "" : ", ", b.description->scheme);
    return out;
}

std::string compiled_in_uris() {
    std::vector<std::string_view> uris;
    for (const auto& b : backends())
        if (b.compiled_in()) uris.push_back(b.description->uri);
    std::string out;
    for (size_t i = 0; i < uris.size(); ++i)
        out += cat(i == 0 ? "" : i + 1 == uris.size() ? " or " : ", ", uris[i]);
    return out;
}

std::span<const OptionGroup> backend_option_groups() {
    static const std::vector<OptionGroup> kGroups = [] {
        std::vector<OptionGroup> out;
        for (const auto& b : backends())
            if (!b.description->options.options.empty()) out.push_back(b.description->options);
        return out;
    }();
    return kGroups;
}

}  // namespace rmig::transport
