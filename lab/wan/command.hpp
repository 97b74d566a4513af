// Runs a short system command (ip netns add/del) with its output captured, so
// a failure reports what the tool said, and with a bounded wait.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace rmig::wan {

struct CommandResult {
    int status = -1;     // exit code; 128+signal if killed; -1 if it could not start
    std::string output;  // stdout and stderr, interleaved
};

// Looks argv[0] up in PATH. Killed (SIGKILL) if it runs past `timeout`.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));
// Throws Error("<what>: `argv...` exited N: <output>") unless it exits 0.
void run_checked(const std::vector<std::string>& argv, const std::string& what);

}  // namespace rmig::wan
