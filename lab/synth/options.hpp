// rmig-synth command line: `rmig-synth source ...` / `rmig-synth dest ...`,
// parsed with the option table machinery of the rmig command
// (common/options.hpp) and its exit codes (common/exit_codes.hpp).
#pragma once

#include <cstdint>
#include <string>

#include "common/args.hpp"
#include "common/exit_codes.hpp"
#include "common/options.hpp"
#include "lab/synth/writers.hpp"
#include "security/settings.hpp"

namespace rmig::synth {

// exit_code::kOk, kFailed (the migration failed) and kUsage, as for rmig;
// and the destination's own verdict: migrated, but pages differ from the
// source's (bench/scripts/memory_e2e.sh tells it apart from a failure).
inline constexpr int kExitMismatch = 3;

// Filled from the option table (options.cpp), which holds the defaults.
struct Options {
    bool source = true;
    uint64_t size = 0;
    std::string uri;  // --to (source) / --listen (dest)
    // source
    WriterConfig writer;
    double dirty_bytes_per_second = 0;
    unsigned workers = 0;
    std::string codec;
    int codec_level = 0;
    double downtime_ms = 0;
    unsigned max_rounds = 0;
    double max_seconds = 0;
    std::string dirty_log;  // "uffd" or "bitmap"
    double zero_fraction = 0;
    double warmup_ms = 0;
    bool hash_at_pause = false;
    double pause_hold_ms = 0;    // extra time inside pause() (a slow device save)
    std::string retry_uri_file;  // after a failure, migrate again to the URI written there
    double retry_wait_s = 0;     // how long to wait for that file
    bool postcopy = false;       // may switch to post-copy (--postcopy, --postcopy-after)
    unsigned postcopy_after = 0; // after that many rounds; 0: when pre-copy will not converge
    bool postcopy_pull = true;   // over rdma the destination may read the pending pages (--no-postcopy-pull)
    // dest
    unsigned expect_workers = 0;
    double timeout_s = 0;
    double step_timeout_s = 0;  // 0: the engine's default
    std::string port_file;
    unsigned guest_readers = 0;        // post-copy: threads that run the guest here
    double guest_read_pages_per_second = 0;  // each; 0: unpaced
    // both
    security::Settings security;  // --psk-file etc., the rmig command's options and policy
    unsigned threads = 0;  // fill / hash / verify threads
    bool json = false;
    bool quiet = false;
    double postcopy_recover_s = 120;  // post-copy: how long a lost link is retried
};

const ProgramSpec& synth_program();
std::string help_text();
// Throws UsageError; returns false when --help was asked for.
bool parse_options(int argc, char** argv, Options& out);

}  // namespace rmig::synth
