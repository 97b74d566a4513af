// The rmig command's option table (common/options.hpp): every option of
// migrate, receive and qmp declared once, in groups. The groups migrate and
// receive share (time limits, the link, each transport backend's tuning,
// security, general) are declared once and listed by both commands; defaults
// come from the structs of the layer that owns each concept, and each
// backend's options from its own description (transport/backend.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <span>

#include "common/args.hpp"
#include "common/options.hpp"
#include "transport/channel.hpp"

namespace rmig::cli {

const ProgramSpec& rmig_program();

// The groups migrate and receive share, each declared once.
std::span<const OptionSpec> session_options();  // --timeout, --stall-timeout, --json, --metrics
std::span<const OptionSpec> link_options();     // --chunk, --socket-buffer
std::span<const OptionSpec> general_options();  // --profile, --verbose, --quiet, --help

// Values read from Args parsed with the groups above.
std::chrono::seconds timeout_option(const Args& a);
std::chrono::milliseconds stall_timeout_option(const Args& a);
size_t chunk_option(const Args& a);
transport::Options transport_options(const Args& a);  // without security
// The transport backends' options given (command line or profile); the
// backends' own defaults fill in the rest (transport/backend.hpp).
transport::BackendSettings backend_settings(const Args& a);

}  // namespace rmig::cli
