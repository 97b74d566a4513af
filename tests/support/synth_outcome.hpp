// What a test of rmig-synth source and dest (two processes) collects: exit
// codes, JSON reports and logs.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace rmig::test {

inline std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

struct SynthOutcome {
    int source_exit = -1, dest_exit = -1;
    nlohmann::json source, dest;
    std::string source_log, dest_log;
};

}  // namespace rmig::test
