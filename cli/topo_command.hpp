// `rmig topo`: NUMA nodes, the NIC's node and the planned worker placement.
#pragma once

#include <span>

#include "common/args.hpp"
#include "common/options.hpp"

namespace rmig::cli {

std::span<const OptionSpec> topo_options();

// `a` parsed with topo_options(); returns the exit code (0 ok, 1 error);
// throws UsageError for bad arguments.
int topo_command(const Args& a);

}  // namespace rmig::cli
