// Minimal leveled logging to stderr. Thread safe (one write per line).
#pragma once

#include <string>

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

}  // namespace rmig::log
