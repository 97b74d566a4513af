// Live progress of a migration on a terminal (one line rewritten in place) or
// in a log (one line per interval), and the final summary.
#include <chrono>
#include <cstdio>

#include "qemu-plugin/migrate_source.hpp"

#pragma once

namespace rmig::cli {

enum class ProgressMode { none, line, tty };
ProgressMode progress_mode(const std::string& flag);  // "auto" | "tty" | "line" | "none"

class ProgressDisplay {
public:
    ProgressDisplay(ProgressMode mode, std::FILE* out) : mode_(mode), out_(out) {}
    void update(const qemu::Progress& p);
    void finish();  // ends the in-place line

private:
    ProgressMode mode_;
    std::FILE* out_;
    std::chrono::steady_clock::time_point last_{};
    uint64_t last_bytes_ = 0;
    double last_t_ = 0;
    double rate_ = 0;
    bool drawn_ = false;
};

void print_summary(const qemu::SourceReport& r, std::FILE* out);

}  // namespace rmig::cli
