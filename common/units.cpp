#include "common/units.hpp"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "common/error.hpp"

namespace rmig {

std::string format_bytes(double bytes) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
    return buf;
}

std::string format_rate(double bps) {
    static const char* units[] = {"B/s", "KB/s", "MB/s", "GB/s", "TB/s"};
    int u = 0;
    while (bps >= 1000.0 && u < 4) {
        bps /= 1000.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f %s", bps, units[u]);
    return buf;
}

std::string format_millis(double ms) {
    char buf[32];
    if (ms < 1000.0)
        std::snprintf(buf, sizeof buf, "%.0f ms", ms);
    else
        std::snprintf(buf, sizeof buf, "%.2f s", ms / 1000.0);
    return buf;
}

uint64_t parse_size(const std::string& text, const std::string& what) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || errno != 0)
        throw Error(cat("bad ", what, " '", text, "': expected a number like 4096, 64K, 10M, 1G"));
    uint64_t mul = 1;
    std::string suffix(end);
    if (suffix == "" || suffix == "B") mul = 1;
    else if (suffix == "K" || suffix == "k" || suffix == "KiB") mul = 1ULL << 10;
    else if (suffix == "M" || suffix == "MiB") mul = 1ULL << 20;
    else if (suffix == "G" || suffix == "GiB") mul = 1ULL << 30;
    else if (suffix == "T" || suffix == "TiB") mul = 1ULL << 40;
    else
        throw Error(cat("bad ", what, " '", text, "': unknown suffix '", suffix,
                        "' (use K, M, G or T)"));
    if (mul > 1 && v > UINT64_MAX / mul) throw Error(cat(what, " '", text, "' is too large"));
    return v * mul;
}

}  // namespace rmig
