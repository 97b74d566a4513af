// hw-configs profiles: named JSON files whose keys are `rmig` option names,
// applied where the command line says nothing (see hw-configs/README.md).
#pragma once

#include <set>
#include <string>

#include "cli/args.hpp"

namespace rmig::cli {

// `name_or_path`: a file path, or a profile name looked up in hw-configs/
// ($RMIG_HW_CONFIGS, else the source tree's). Keys outside `allowed` (and the
// descriptive "name", "description", "link") are an error naming the file.
void apply_profile(Args& args, const std::string& name_or_path, const std::set<std::string>& allowed);

}  // namespace rmig::cli
