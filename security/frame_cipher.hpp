// AES-256-GCM for one channel direction (docs/security.md).
//
// A sealed frame travels as an inner DATA frame (so the transport sees
// neither the real type nor, for END, an illegal payload) whose payload is
//     u8 type | u8[3] zero | u32 LE plaintext length | ciphertext | 16-byte tag
// The nonce is the key's 4-byte salt followed by the 64-bit frame counter
// (LE), so it never repeats under one key; the AAD binds the frame type, the
// channel id, the counter and the length. The receiver expects counters in
// order, so a tampered, replayed, reordered, dropped or truncated frame fails
// authentication.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/wire/frame.hpp"
#include "security/keys.hpp"
#include "security/openssl_util.hpp"

namespace rmig::security {

inline constexpr size_t kSealPrefix = 8;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kSealOverhead = kSealPrefix + kTagSize;
// The largest plaintext one sealed frame may carry (the frame limit minus overhead).
inline constexpr size_t kMaxSealedPlaintext = wire::kMaxFramePayload - kSealOverhead;

class FrameSealer {
public:
    FrameSealer(const FrameKey& key, uint32_t channel);
    // Replaces `out` with the sealed form of `plain` as frame number counter().
    void seal(wire::FrameType type, std::span<const std::byte> plain, std::vector<std::byte>& out);
    uint64_t counter() const { return counter_; }

private:
    CipherCtxPtr ctx_;
    SecretBytes<4> salt_;
    uint32_t channel_;
    uint64_t counter_ = 0;
};

class FrameOpener {
public:
    // `name` starts every error ("tcp channel 2 from 10.0.0.1:40000").
    FrameOpener(const FrameKey& key, uint32_t channel, std::string name);
    // Total sealed bytes the frame whose first piece is `first` needs (from its
    // length prefix); throws ProtocolError if the prefix is missing or too large.
    size_t sealed_size(std::span<const std::byte> first) const;
    // Verifies and decrypts the whole sealed frame into `plain` (resized);
    // returns the frame's real type. Throws ProtocolError naming the channel
    // and the frame counter.
    wire::FrameType open(std::span<const std::byte> sealed, std::vector<std::byte>& plain);
    uint64_t counter() const { return counter_; }
    const std::string& name() const { return name_; }

private:
    CipherCtxPtr ctx_;
    SecretBytes<4> salt_;
    uint32_t channel_;
    std::string name_;
    uint64_t counter_ = 0;
};

}  // namespace rmig::security
