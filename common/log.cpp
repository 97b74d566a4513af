#include "common/log.hpp"

#include <unistd.h>

#include <atomic>
#include <mutex>

namespace rmig::log {

namespace {
std::atomic<Level> g_level{Level::info};
std::mutex g_prefix_mutex;
std::string g_prefix = "rmig";
}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }
void set_prefix(const std::string& p) {
    std::lock_guard lock(g_prefix_mutex);
    g_prefix = p;
}

void write(Level l, const std::string& line) {
    static const char* names[] = {"debug", "info", "warning", "error", ""};
    std::string out;
    {
        std::lock_guard lock(g_prefix_mutex);
        out = g_prefix;
    }
    out += l == Level::info ? ": " : cat(": ", names[static_cast<int>(l)], ": ");
    out += line;
    out += '\n';
    // One write(2) per line so lines from threads and processes never interleave.
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, out.data(), out.size());
}

}  // namespace rmig::log
