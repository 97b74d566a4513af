// Minimal leveled logging to stderr. Thread safe (one write per line).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace rmig::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, quiet = 4 };

void set_level(Level level);
Level level();
void set_prefix(const std::string& prefix);  // e.g. "rmig receive"
void write(Level level, const std::string& line);

template <class... A> void debug(const A&... a) {
    if (level() <= Level::debug) write(Level::debug, cat(a...));
}
template <class... A> void info(const A&... a) {
    if (level() <= Level::info) write(Level::info, cat(a...));
}
template <class... A> void warn(const A&... a) {
    if (level() <= Level::warn) write(Level::warn, cat(a...));
}
template <class... A> void error(const A&... a) { write(Level::error, cat(a...)); }

// Keeps a copy of every line written while it lives (lines still go to
// stderr), so a test can check what a component said about an event it
// handles on its own threads (e.g. a listener refusing a stranger).
// One at a time.
class Capture {
public:
    Capture();
    ~Capture();
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;

    // The first captured line containing `text`, waiting up to `timeout`; "" if none.
    std::string wait_for(const std::string& text, std::chrono::milliseconds timeout) const;
    size_t count(const std::string& text) const;  // lines containing it so far

    void add(const std::string& line);

private:
    mutable std::mutex mu_;
    std::vector<std::string> lines_;
};

}  // namespace rmig::log
