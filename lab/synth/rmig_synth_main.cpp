// rmig-synth: a synthetic guest for demos, tests and benchmarks of memory
// mode (see options.cpp for its options, docs/c-api.md for the API it uses).
#include <iostream>

#include "lab/synth/modes.hpp"

int main(int argc, char** argv) {
    using namespace rmig;
    using namespace rmig::synth;
    Options o;
    try {
        if (!parse_options(argc, argv, o)) {
            std::cout << help_text();
            return exit_code::kOk;
        }
    } catch (const UsageError& e) {
        std::cerr << "rmig-synth: " << e.what() << "\nTry 'rmig-synth --help'.\n";
        return exit_code::kUsage;
    }
    try {
        return o.source ? run_source(o) : run_dest(o);
    } catch (const UsageError& e) {
        std::cerr << "rmig-synth: " << e.what() << "\n";
        return exit_code::kUsage;
    } catch (const std::exception& e) {
        std::cerr << "rmig-synth " << (o.source ? "source" : "dest") << ": " << e.what() << "\n";
        return exit_code::kFailed;
    }
}
