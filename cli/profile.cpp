#include "cli/profile.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace rmig::cli {

namespace {

// Where named profiles live: $RMIG_HW_CONFIGS, else where an installed rmig
// has them (BINDIR/../share/rmig/hw-configs, found from the running binary so
// that any prefix works, also a package unpacked elsewhere), else the source
// tree's (a binary run from its build tree).
std::string profiles_dir() {
    if (const char* env = std::getenv("RMIG_HW_CONFIGS")) return env;
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        auto installed = exe.parent_path().parent_path() / "share" / "rmig" / "hw-configs";
        if (std::filesystem::is_directory(installed, ec)) return installed.string();
    }
    return RMIG_HW_CONFIGS_DIR;
}

std::string find_profile(const std::string& name_or_path) {
    if (std::filesystem::exists(name_or_path)) return name_or_path;
    std::string dir = profiles_dir();
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

ProfileHint suggest_profile(double rtt_ms, double bytes_per_s) {
    if (rtt_ms <= 0) return {};
    double gbit = bytes_per_s * 8 / 1e9;
    std::string link = cat("RTT ", rtt_ms < 1 ? cat(static_cast<int>(rtt_ms * 1000), " us")
                                             : cat(static_cast<int>(rtt_ms + 0.5), " ms"),
                           ", ", static_cast<int>(bytes_per_s / 1e6), " MB/s reached");
    // Within a datacenter the window is small; what matters is spreading
    // over cores. Between sites, flows and windows matter, and compression
    // pays below a few Gb/s.
    if (rtt_ms < 0.1) return {"loopback", link};
    if (rtt_ms < 2) return {gbit > 30 ? "dc-100g" : "dc-25g", link};
    if (gbit > 3) return {"wan-100ms", link};
    return {rtt_ms >= 100 ? "wan-1g-150ms" : "wan-1g-50ms", link};
}

}  // namespace rmig::cli
