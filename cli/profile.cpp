#include "cli/profile.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace rmig::cli {

namespace {

std::string find_profile(const std::string& name_or_path) {
    if (std::filesystem::exists(name_or_path)) return name_or_path;
    const char* env = std::getenv("RMIG_HW_CONFIGS");
    std::string dir = env ? env : RMIG_HW_CONFIGS_DIR;
    std::string path = dir + "/" + name_or_path + ".json";
    if (std::filesystem::exists(path)) return path;
    throw UsageError(cat("no profile '", name_or_path, "': not a file, and not in ", dir,
                         " (ls that directory for the named profiles)"));
}

}  // namespace

void apply_profile(Args& args, const std::string& name_or_path) {
    const ProgramSpec& program = *args.program();
    std::string path = find_profile(name_or_path);
    std::ifstream in(path);
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw UsageError(cat("profile ", path, " is not a JSON object"));
    for (auto& [key, value] : j.items()) {
        if (key == "name" || key == "description" || key == "link") continue;
        const OptionSpec* spec = program.find_option(key);
        if (!spec || !spec->profile) {
            std::string settable;
            for (const auto& c : program.commands)
                for (const auto& g : c.groups)
                    for (const auto& o : g.options)
                        if (o.profile && settable.find(cat(" ", o.name, ",")) == std::string::npos)
                            settable += cat(" ", o.name, ",");
            if (!settable.empty()) settable.pop_back();
            throw UsageError(cat("profile ", path, ": '", key, "' is not an option a profile may set (those are:",
                                 settable, ")"));
        }
        if (!args.command()->find(key)) continue;  // another command's (e.g. multifd for receive)
        args.set_default(key, value.is_string() ? value.get<std::string>() : value.dump(),
                         cat("profile ", path, ": "));
    }
}

}  // namespace rmig::cli
