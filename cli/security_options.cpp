#include "cli/security_options.hpp"

namespace rmig::cli {

std::shared_ptr<security::Context> security_from_args(const Args& a, const std::string& uri,
                                                      const std::string& uri_option) {
    try {
        return security::context_from_settings(security::settings_from_args(a), uri, uri_option);
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
}

}  // namespace rmig::cli
