#include "cli/security_options.hpp"

namespace rmig::cli {

std::shared_ptr<security::Context> security_from_args(const Args& a, const std::string& uri,
                                                      const std::string& uri_option) {
    security::Settings s;
    for (const char* name : security::Settings::kValueOptions)
        if (auto v = a.get(name)) s.set(name, *v);
    for (const char* name : security::Settings::kFlags)
        if (a.flag(name)) s.set(name);
    try {
        return security::context_from_settings(s, uri, uri_option);
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
}

}  // namespace rmig::cli
