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

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "wire/frame.hpp"
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
    // The same sealed frame written piece by piece into memory the caller
    // hands out (a transport's send slots, Channel::send_filled): begin()
    // takes the frame's counter and returns the sealed size; write(dst, offset)
    // then writes sealed bytes [offset, offset + dst.size()), encrypting
    // `plain` as it goes, with offsets consecutive from 0 to the sealed size.
    // `plain` must stay valid until the last write. The counter is taken at
    // begin(), so a frame abandoned half-way never lends its nonce to another.
    size_t begin(wire::FrameType type, std::span<const std::byte> plain);
    void write(std::span<std::byte> dst, size_t offset);
    uint64_t counter() const { return counter_; }

private:
    void check_size(size_t len) const;

    CipherCtxPtr ctx_;
    SecretBytes<4> salt_;
    uint32_t channel_;
    uint64_t counter_ = 0;
    // The frame begin() started: its prefix, plaintext, tag, next offset.
    std::array<std::byte, kSealPrefix> prefix_{};
    std::span<const std::byte> plain_;
    std::array<std::byte, kTagSize> tag_{};
    size_t at_ = 0;
    bool open_ = false;
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
    // The same, for a frame read piece by piece straight into the caller's
    // buffer: begin(prefix) checks the 8-byte prefix and returns the plaintext
    // length; decrypt_in_place() then turns consecutive ciphertext pieces into
    // plaintext where they lie; finish(tag) verifies the whole frame and
    // returns its type. Until finish() returns, the bytes are unauthenticated:
    // on any throw the caller must wipe them.
    size_t begin(std::span<const std::byte> prefix);
    void decrypt_in_place(std::span<std::byte> data);
    wire::FrameType finish(std::span<const std::byte> tag);
    uint64_t counter() const { return counter_; }
    const std::string& name() const { return name_; }

private:
    CipherCtxPtr ctx_;
    SecretBytes<4> salt_;
    uint32_t channel_;
    std::string name_;
    uint64_t counter_ = 0;
    [[noreturn]] void failed() const;
    wire::FrameType check_prefix(std::span<const std::byte> prefix) const;
    // The frame begin() started.
    wire::FrameType type_ = wire::FrameType::data;
    size_t left_ = 0;
    bool open_ = false;
};

}  // namespace rmig::security
