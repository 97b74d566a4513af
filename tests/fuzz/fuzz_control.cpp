// libFuzzer: control messages come from the peer as JSON in CONTROL frames
// (wire/control.hpp decodes them); the destination and source parse settings
// and QEMU descriptions out of them.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "qemu-plugin/migration_settings.hpp"
#include "qemu-plugin/qemu_info.hpp"
#include "wire/control.hpp"

using namespace rmig;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    nlohmann::json j;
    try {
        j = wire::decode_control(wire::FrameType::control,
                                 std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz");
    } catch (const ProtocolError&) {
        return 0;  // not one JSON object
    }
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
