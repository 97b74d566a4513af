// Child processes for the lab (tests, demo, benchmarks): spawn with argv,
// output to a file, bounded waits, and kill on destruction so no test leaks a
// QEMU or an rmig side.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace rmig {

class Process {
public:
    struct Options {
        std::string stdout_path;  // empty: inherit
        std::string stderr_path;  // empty: inherit; "=stdout": same file as stdout
    };

    Process() = default;
    Process(const std::vector<std::string>& argv, const Options& opts);
    Process(Process&& o) noexcept;
    Process& operator=(Process&& o) noexcept;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    ~Process();  // SIGKILL + reap if still running

    pid_t pid() const { return pid_; }
    bool running();
    void signal(int sig);
    // Waits up to `timeout`; returns the exit code (128+signal if killed) or nullopt.
    std::optional<int> wait_for(std::chrono::milliseconds timeout);
    // SIGTERM, then SIGKILL after `grace`; returns the exit status.
    int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
    const std::string& name() const { return name_; }

    // From now on, children get SIGKILL when the thread that started them
    // dies (PR_SET_PDEATHSIG), so a lab killed by a timeout leaves no QEMU
    // behind. Only for programs that start every child from one thread.
    static void children_die_with_parent(bool on);

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    std::string name_;
};

}  // namespace rmig
