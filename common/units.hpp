// Human-readable sizes and rates, and parsing of sizes given on command lines.
#pragma once

#include <cstdint>
#include <string>

namespace rmig {

std::string format_bytes(double bytes);           // "1.50 GiB"
std::string format_rate(double bytes_per_second);  // "1.20 GB/s" (decimal, like link speeds)
std::string format_millis(double ms);              // "850 ms", "2.41 s"

// "4096", "64K", "10M", "1G", "2T" (binary multiples). Throws Error naming `what`.
uint64_t parse_size(const std::string& text, const std::string& what);

}  // namespace rmig
