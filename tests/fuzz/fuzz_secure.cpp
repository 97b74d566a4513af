// libFuzzer: the decoders security/ adds on every channel, fed with untrusted
// bytes: the data channel's token frame, and a stream of sealed (AES-256-GCM)
// frames under a fixed key. Every outcome must be a decoded value or a
// ProtocolError; a frame the opener accepts must be one the sealer made, and a
// seal/open round trip of the input must give the input back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "common/error.hpp"
#include "security/frame_cipher.hpp"
#include "security/keys.hpp"

using namespace rmig;
using namespace rmig::security;

namespace {

FrameKey fixed_key() {
    SessionSecret s;
    std::memset(s.data(), 0x42, s.size());
    return derive_frame_key(s, wire::SessionId{}, 1, Direction::to_acceptor);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const FrameKey key = fixed_key();
    auto bytes = std::as_bytes(std::span(data, size));
    try {
        TokenFrame t = decode_token_frame(bytes, "fuzz peer");
        SessionSecret s;
        (void)token_matches(t, s);
    } catch (const ProtocolError&) {
    }

    // The receiver's view: sealed frames back to back, each sized by its prefix.
    FrameOpener opener(key, 1, "fuzz channel 1");
    std::vector<std::byte> plain;
    size_t at = 0;
    try {
        while (at < bytes.size()) {
            size_t want = opener.sealed_size(bytes.subspan(at));
            if (at + want > bytes.size()) break;
            (void)opener.open(bytes.subspan(at, want), plain);
            at += want;
        }
    } catch (const ProtocolError&) {
    }

    // The streaming opener (rdma's in-place receive) on the same bytes, in
    // 7-byte pieces, must accept exactly what open() accepted.
    {
        FrameOpener whole(key, 1, "fuzz whole"), streamed(key, 1, "fuzz streamed");
        std::vector<std::byte> a, b;
        size_t pos = 0;
        while (pos + kSealPrefix <= bytes.size()) {
            bool ok_whole = true, ok_streamed = true;
            size_t want = 0;
            try {
                want = whole.sealed_size(bytes.subspan(pos));
            } catch (const ProtocolError&) {
                break;
            }
            if (pos + want > bytes.size()) break;
            auto frame = bytes.subspan(pos, want);
            try {
                (void)whole.open(frame, a);
            } catch (const ProtocolError&) {
                ok_whole = false;
            }
            try {
                size_t len = streamed.begin(frame.first(kSealPrefix));
                b.assign(frame.begin() + kSealPrefix, frame.begin() + kSealPrefix + len);
                for (size_t i = 0; i < len; i += 7)
                    streamed.decrypt_in_place(std::span(b).subspan(i, std::min<size_t>(7, len - i)));
                (void)streamed.finish(frame.subspan(kSealPrefix + len));
            } catch (const ProtocolError&) {
                ok_streamed = false;
            }
            if (ok_whole != ok_streamed || (ok_whole && a != b)) std::abort();
            if (!ok_whole) break;
            pos += want;
        }
    }

    // Round trip of the input as plaintext.
    if (size <= kMaxSealedPlaintext) {
        FrameSealer sealer(key, 1);
        FrameOpener back(key, 1, "fuzz round trip");
        std::vector<std::byte> sealed, out;
        sealer.seal(wire::FrameType::data, bytes, sealed);
        if (back.open(sealed, out) != wire::FrameType::data || out.size() != size ||
            (size && std::memcmp(out.data(), data, size) != 0))
            std::abort();
        // Sealed piece by piece (rdma's send slots), byte for byte the same frame.
        FrameSealer streamed(key, 1);
        std::vector<std::byte> pieces(streamed.begin(wire::FrameType::data, bytes));
        size_t step = 1 + size % 97;
        for (size_t i = 0; i < pieces.size(); i += step)
            streamed.write(std::span(pieces).subspan(i, std::min(step, pieces.size() - i)), i);
        if (pieces != sealed) std::abort();
    }
    return 0;
}
