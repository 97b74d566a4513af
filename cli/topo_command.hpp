// `rmig topo`: NUMA nodes, the NIC's node and the planned worker placement.
#pragma once

namespace rmig::cli {

// argv[0] is "topo"; returns the exit code (0 ok, 1 error, 2 bad arguments).
int topo_command(int argc, char** argv);

}  // namespace rmig::cli
