// libFuzzer: the handshake decoders read the first bytes any peer sends.
// Any input must either decode or throw ProtocolError; nothing else.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/error.hpp"
#include "wire/handshake.hpp"

using namespace rmig;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto bytes = std::as_bytes(std::span(data, size));
    for (bool reply : {false, true}) {
        try {
            wire::Hello h = wire::decode_hello_compact(bytes, reply, "fuzz");
            wire::check_version(h, "fuzz");
        } catch (const ProtocolError&) {
        }
        if (size >= wire::kHelloSize) {
            try {
                wire::decode_hello(bytes.first<wire::kHelloSize>(), reply, "fuzz");
            } catch (const ProtocolError&) {
            }
        }
    }
    return 0;
}
