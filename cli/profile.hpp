// hw-configs profiles: named JSON files whose keys are `rmig` option names,
// applied where the command line says nothing (see hw-configs/README.md).
#pragma once

#include <string>

#include "common/args.hpp"

namespace rmig::cli {

// `name_or_path`: a file path, or a profile name looked up in hw-configs/
// ($RMIG_HW_CONFIGS, else the source tree's). `args` was parsed with an option
// table: a key must be an option marked `profile` in some command of its
// program (or the descriptive "name", "description", "link"), and applies
// where `args`' command has it; its value is checked like the command line's.
// Errors name the file.
void apply_profile(Args& args, const std::string& name_or_path);

// The named profile whose link fits a measured round trip and rate (bytes/s
// the migration reached on the wire), with why; empty name when nothing was
// measured. A rule of thumb over the shapes hw-configs/README.md lists.
struct ProfileHint {
    std::string name;
    std::string why;
};
ProfileHint suggest_profile(double rtt_ms, double bytes_per_s);

}  // namespace rmig::cli
