#include "common/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <utility>

#include "common/error.hpp"

namespace rmig {

namespace {
std::atomic<bool> g_die_with_parent{false};
}

void Process::children_die_with_parent(bool on) { g_die_with_parent = on; }

Process::Process(const std::vector<std::string>& argv, const Options& opts) {
    if (argv.empty()) throw Error("Process: empty argv");
    name_ = argv[0];
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    bool die_with_parent = g_die_with_parent;
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno(cat("fork for ", argv[0]));
    if (pid == 0) {
        // Child: only async-signal-safe calls from here on.
        ::setpgid(0, 0);
        if (die_with_parent) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
        }
        if (!opts.stdout_path.empty()) {
            int fd = ::open(opts.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                ::dup2(fd, 1);
                if (opts.stderr_path == "=stdout") ::dup2(fd, 2);
                ::close(fd);
            }
        }
        if (!opts.stderr_path.empty() && opts.stderr_path != "=stdout") {
            int fd = ::open(opts.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                ::dup2(fd, 2);
                ::close(fd);
            }
        }
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    pid_ = pid;
}

Process::Process(Process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), status_(o.status_), name_(std::move(o.name_)) {}

Process& Process::operator=(Process&& o) noexcept {
    if (this != &o) {
        if (pid_ > 0 && !status_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        pid_ = std::exchange(o.pid_, -1);
        status_ = o.status_;
        name_ = std::move(o.name_);
    }
    return *this;
}

Process::~Process() {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
}

namespace {
int decode(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }
}  // namespace

bool Process::running() {
    if (pid_ <= 0 || status_) return false;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) status_ = decode(st);
    return !status_;
}

void Process::signal(int sig) {
    if (running()) ::kill(pid_, sig);
}

std::optional<int> Process::wait_for(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return status_;
}

int Process::stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return -1;
    signal(SIGTERM);
    if (auto st = wait_for(grace)) return *st;
    signal(SIGKILL);
    return wait_for(std::chrono::milliseconds(5000)).value_or(-1);
}

}  // namespace rmig
