#include "common/log.hpp"

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace rmig::log {

namespace {
std::atomic<Level> g_level{Level::info};
std::mutex g_prefix_mutex;
std::string g_prefix = "rmig";
std::mutex g_capture_mutex;
Capture* g_capture = nullptr;
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
    {
        std::lock_guard lock(g_capture_mutex);
        if (g_capture) g_capture->add(line);
    }
    // One write(2) per line so lines from threads and processes never interleave.
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, out.data(), out.size());
}

Capture::Capture() {
    std::lock_guard lock(g_capture_mutex);
    if (g_capture) throw Error("log::Capture: one at a time");
    g_capture = this;
}

Capture::~Capture() {
    std::lock_guard lock(g_capture_mutex);
    g_capture = nullptr;
}

void Capture::add(const std::string& line) {
    std::lock_guard lk(mu_);
    lines_.push_back(line);
}

std::string Capture::wait_for(const std::string& text, std::chrono::milliseconds timeout) const {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        {
            std::lock_guard lk(mu_);
            for (auto& l : lines_)
                if (l.find(text) != std::string::npos) return l;
        }
        if (std::chrono::steady_clock::now() >= until) return {};
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

size_t Capture::count(const std::string& text) const {
    std::lock_guard lk(mu_);
    size_t n = 0;
    for (auto& l : lines_) n += l.find(text) != std::string::npos;
    return n;
}

}  // namespace rmig::log
