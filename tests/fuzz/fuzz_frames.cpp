// libFuzzer: a channel's byte stream after the handshake, as a receiver reads
// it (header, then payload of the announced length, then the next frame).
// Every outcome must be a decoded frame or a ProtocolError.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/error.hpp"
#include "wire/frame.hpp"

using namespace rmig;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto bytes = std::as_bytes(std::span(data, size));
    wire::FrameDecoder dec(1, "fuzz channel 1");
    size_t at = 0;
    try {
        while (at + wire::kFrameHeaderSize <= bytes.size()) {
            auto h = dec.decode_header(bytes.subspan(at).first<wire::kFrameHeaderSize>());
            at += wire::kFrameHeaderSize;
            if (at + h.length > bytes.size()) dec.truncated("payload", bytes.size() - at, h.length);
            dec.verify_payload(h, bytes.subspan(at, h.length));
            at += h.length;
        }
    } catch (const ProtocolError&) {
    }
    return 0;
}
