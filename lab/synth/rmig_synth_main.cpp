// rmig-synth: a synthetic guest for demos, tests and benchmarks of memory
// mode (see options.cpp for the usage text, docs/c-api.md for the API it uses).
#include <iostream>

#include "lab/synth/modes.hpp"

int main(int argc, char** argv) {
    using namespace rmig::synth;
    Options o;
    try {
        if (!parse_options(argc, argv, o)) {
            std::cout << help_text() << "\n" << rmig::security::kSettingsUsage;
            return kExitOk;
        }
    } catch (const UsageError& e) {
        std::cerr << "rmig-synth: " << e.what() << "\n";
        return kExitUsage;
    }
    try {
        return o.source ? run_source(o) : run_dest(o);
    } catch (const UsageError& e) {
        std::cerr << "rmig-synth: " << e.what() << "\n";
        return kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << "rmig-synth " << (o.source ? "source" : "dest") << ": " << e.what() << "\n";
        return kExitFailed;
    }
}
