// rmig-synth command line: `rmig-synth source ...` / `rmig-synth dest ...`.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "lab/synth/writers.hpp"
#include "security/settings.hpp"

namespace rmig::synth {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;    // the migration failed
inline constexpr int kExitUsage = 2;
inline constexpr int kExitMismatch = 3;  // migrated, but pages differ from the source's

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Options {
    bool source = true;
    uint64_t size = 1ULL << 30;
    std::string uri;  // --to (source) / --listen (dest)
    // source
    WriterConfig writer;
    double dirty_bytes_per_second = 0;
    unsigned workers = 2;
    std::string codec = "none";
    int codec_level = 0;
    double downtime_ms = 300;
    unsigned max_rounds = 30;
    double max_seconds = 600;
    std::string dirty_log = "uffd";  // or "bitmap"
    double zero_fraction = 0.25;
    double warmup_ms = 200;
    bool hash_at_pause = false;
    // dest
    unsigned expect_workers = 0;
    double timeout_s = 600;
    std::string port_file;
    // both
    security::Settings security;  // --psk-file etc., the rmig command's options and policy
    unsigned threads = 2;  // fill / hash / verify threads
    bool json = false;
    bool quiet = false;
};

const char* help_text();
// Throws UsageError; returns false when --help was asked for.
bool parse_options(int argc, char** argv, Options& out);

}  // namespace rmig::synth
