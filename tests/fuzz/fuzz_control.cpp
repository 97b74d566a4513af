// libFuzzer: control messages come from the peer as JSON; the destination
// and source parse settings and QEMU descriptions out of them.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "qemu-plugin/migration_settings.hpp"
#include "qemu-plugin/qemu_info.hpp"

using namespace rmig;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return 0;
    for (const char* key : {"settings", "info"}) {
        if (!j.contains(key)) continue;
        try {
            if (std::string(key) == "settings")
                qemu::settings_from_json(j.at(key));
            else
                qemu::info_from_json(j.at(key));
        } catch (const ProtocolError&) {
        } catch (const nlohmann::json::exception&) {
            // info_from_json / settings_from_json must not let these escape.
            __builtin_trap();
        }
    }
    return 0;
}
