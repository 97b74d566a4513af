// The two halves of rmig-synth; each returns the process exit code.
#pragma once

#include "lab/synth/options.hpp"

namespace rmig::synth {

int run_source(const Options& o);
int run_dest(const Options& o);

}  // namespace rmig::synth
