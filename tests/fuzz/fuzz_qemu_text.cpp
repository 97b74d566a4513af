// libFuzzer: what QEMU answers (HMP "info ramblock" text, query-migrate JSON)
// is parsed by rmig; a QEMU of another version must not crash it.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "qemu-plugin/qemu_info.hpp"

using namespace rmig;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        qemu::parse_ramblocks(text);
    } catch (const ProtocolError&) {
    }
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_discarded()) {
        try {
            qemu::parse_migration_stats(j);
        } catch (const ProtocolError&) {
        }
    }
    return 0;
}
