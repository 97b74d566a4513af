// rmig-wan's command line (`up`, `down`), declared once in an option table
// (common/options.hpp) for parsing, checking and --help, with the exit codes
// of common/exit_codes.hpp.
#pragma once

#include <string>
#include <vector>

#include "common/args.hpp"
#include "common/options.hpp"
#include "lab/wan/wan_link.hpp"

namespace rmig::wan {

struct UpOptions {
    WanConfig link;
    double duration_s = 0;  // 0: until SIGINT/SIGTERM
    std::string ready_file;
    bool json = false;
};

struct WanCommand {
    enum class Kind { help, up, down } kind = Kind::help;
    UpOptions up;
    std::string name;  // down
};

const ProgramSpec& wan_program();
std::string wan_help();
// Throws UsageError. --outage may be given several times (the times add up).
WanCommand parse_wan_command(const std::vector<std::string>& argv);

}  // namespace rmig::wan
