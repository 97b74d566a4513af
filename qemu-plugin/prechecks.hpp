// Pre-migration checks: before any page moves, both QEMUs must be the same
// version and machine type, with the same RAM size and RAM blocks, in states
// that allow the migration. Each check says what differs.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qemu-plugin/migration_settings.hpp"
#include "qemu-plugin/qemu_info.hpp"

namespace rmig::qemu {

struct Check {
    std::string name;
    bool ok = false;
    std::string detail;
};

std::vector<Check> check_pair(const QemuInfo& source, const QemuInfo& dest);
Check check_settings(const MigrationSettings& source, const MigrationSettings& dest);
// Both QEMUs have post-copy on, with the same preempt channel (when asked for).
Check check_postcopy(const MigrationSettings& source, const MigrationSettings& dest);
bool all_ok(const std::vector<Check>& checks);
// "version: source 7.2.22, destination 8.0.0; ..." for the failed ones.
std::string failures(const std::vector<Check>& checks);
nlohmann::json to_json(const std::vector<Check>& checks);

}  // namespace rmig::qemu
