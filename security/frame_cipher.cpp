#include "security/frame_cipher.hpp"

#include <algorithm>
#include <cstring>

#include "common/error.hpp"
#include "wire/byte_order.hpp"

namespace rmig::security {

namespace {

constexpr size_t kAadSize = 24;

std::array<unsigned char, 12> nonce(const SecretBytes<4>& salt, uint64_t counter) {
    std::array<unsigned char, 12> iv;
    std::memcpy(iv.data(), salt.data(), 4);
    wire::put_le<uint64_t>(reinterpret_cast<std::byte*>(iv.data() + 4), counter);
    return iv;
}

//  0 "RMGC"  4 u8 type  5 u8[3] zero  8 u32 channel  12 u64 counter  20 u32 length
std::array<unsigned char, kAadSize> aad(wire::FrameType type, uint32_t channel, uint64_t counter,
                                        uint32_t length) {
    std::array<unsigned char, kAadSize> a{};
    auto* p = reinterpret_cast<std::byte*>(a.data());
    std::memcpy(a.data(), "RMGC", 4);
    a[4] = static_cast<unsigned char>(type);
    wire::put_le<uint32_t>(p + 8, channel);
    wire::put_le<uint64_t>(p + 12, counter);
    wire::put_le<uint32_t>(p + 20, length);
    return a;
}

CipherCtxPtr make_ctx(const FrameKey& key, bool encrypt) {
    CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    if (!ctx || EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.key.data(), nullptr,
                                  encrypt ? 1 : 0) != 1)
        throw Error(cat("setting up AES-256-GCM: ", openssl_errors()));
    return ctx;
}

}  // namespace

FrameSealer::FrameSealer(const FrameKey& key, uint32_t channel)
    : ctx_(make_ctx(key, true)), salt_(key.salt), channel_(channel) {}

void FrameSealer::check_size(size_t len) const {
    if (len > kMaxSealedPlaintext)
        throw Error(cat("channel ", channel_, ": a frame of ", len,
                        " bytes is more than an encrypted frame can carry (", kMaxSealedPlaintext, ")"));
    if (counter_ == UINT64_MAX) throw Error(cat("channel ", channel_, ": frame counter exhausted"));
}

void FrameSealer::seal(wire::FrameType type, std::span<const std::byte> plain, std::vector<std::byte>& out) {
    check_size(plain.size());
    auto len = static_cast<uint32_t>(plain.size());
    out.resize(kSealOverhead + len);
    out[0] = static_cast<std::byte>(type);
    out[1] = out[2] = out[3] = std::byte{0};
    wire::put_le<uint32_t>(out.data() + 4, len);
    auto iv = nonce(salt_, counter_);
    auto a = aad(type, channel_, counter_, len);
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    int n = 0;
    bool ok = EVP_EncryptInit_ex(ctx_.get(), nullptr, nullptr, nullptr, iv.data()) == 1 &&
              EVP_EncryptUpdate(ctx_.get(), nullptr, &n, a.data(), kAadSize) == 1;
    if (ok && len)
        ok = EVP_EncryptUpdate(ctx_.get(), o + kSealPrefix, &n,
                               reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(len)) == 1;
    ok = ok && EVP_EncryptFinal_ex(ctx_.get(), o + kSealPrefix + len, &n) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, o + kSealPrefix + len) == 1;
    if (!ok) throw Error(cat("channel ", channel_, ": AES-256-GCM encryption failed: ", openssl_errors()));
    ++counter_;
}

size_t FrameSealer::begin(wire::FrameType type, std::span<const std::byte> plain) {
    check_size(plain.size());
    auto len = static_cast<uint32_t>(plain.size());
    auto iv = nonce(salt_, counter_);
    auto a = aad(type, channel_, counter_, len);
    int n = 0;
    ++counter_;  // taken now: never reused, even if this frame is abandoned
    open_ = false;
    if (EVP_EncryptInit_ex(ctx_.get(), nullptr, nullptr, nullptr, iv.data()) != 1 ||
        EVP_EncryptUpdate(ctx_.get(), nullptr, &n, a.data(), kAadSize) != 1)
        throw Error(cat("channel ", channel_, ": AES-256-GCM encryption failed: ", openssl_errors()));
    prefix_ = {};
    prefix_[0] = static_cast<std::byte>(type);
    wire::put_le<uint32_t>(prefix_.data() + 4, len);
    plain_ = plain;
    at_ = 0;
    open_ = true;
    return kSealOverhead + len;
}

void FrameSealer::write(std::span<std::byte> dst, size_t offset) {
    size_t len = plain_.size(), total = kSealOverhead + len;
    if (!open_ || offset != at_ || dst.size() > total - at_)
        throw Error(cat("channel ", channel_, ": sealed frame written out of order (bytes ", offset, "..",
                        offset + dst.size(), " of ", total, ", next expected ", at_, ")"));
    auto* o = reinterpret_cast<unsigned char*>(dst.data());
    size_t done = 0;
    while (done < dst.size()) {
        size_t at = at_ + done, left = dst.size() - done;
        if (at < kSealPrefix) {
            size_t k = std::min(left, kSealPrefix - at);
            std::memcpy(o + done, prefix_.data() + at, k);
            done += k;
        } else if (at < kSealPrefix + len) {
            // GCM is a stream mode: EVP writes exactly as many bytes as it reads.
            size_t k = std::min(left, kSealPrefix + len - at);
            int n = 0;
            if (EVP_EncryptUpdate(ctx_.get(), o + done, &n,
                                  reinterpret_cast<const unsigned char*>(plain_.data() + (at - kSealPrefix)),
                                  static_cast<int>(k)) != 1 ||
                size_t(n) != k)
                throw Error(cat("channel ", channel_, ": AES-256-GCM encryption failed: ", openssl_errors()));
            done += k;
            if (at + k == kSealPrefix + len) {
                auto* t = reinterpret_cast<unsigned char*>(tag_.data());
                if (EVP_EncryptFinal_ex(ctx_.get(), t, &n) != 1 ||
                    EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, t) != 1)
                    throw Error(cat("channel ", channel_, ": AES-256-GCM tag failed: ", openssl_errors()));
            }
        } else {
            if (len == 0 && at == kSealPrefix) {  // no ciphertext: the tag is all there is
                int n = 0;
                auto* t = reinterpret_cast<unsigned char*>(tag_.data());
                if (EVP_EncryptFinal_ex(ctx_.get(), t, &n) != 1 ||
                    EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, t) != 1)
                    throw Error(cat("channel ", channel_, ": AES-256-GCM tag failed: ", openssl_errors()));
            }
            size_t k = std::min(left, total - at);
            std::memcpy(o + done, tag_.data() + (at - kSealPrefix - len), k);
            done += k;
        }
    }
    at_ += dst.size();
    if (at_ == total) {
        open_ = false;
        plain_ = {};
    }
}

FrameOpener::FrameOpener(const FrameKey& key, uint32_t channel, std::string name)
    : ctx_(make_ctx(key, false)), salt_(key.salt), channel_(channel), name_(std::move(name)) {}

size_t FrameOpener::sealed_size(std::span<const std::byte> first) const {
    if (first.size() < kSealPrefix)
        throw ProtocolError(cat(name_, ": encrypted frame ", counter_, " truncated: ", first.size(),
                                " bytes, not even its length"));
    uint32_t len = wire::get_le<uint32_t>(first.data() + 4);
    if (len > kMaxSealedPlaintext)
        throw ProtocolError(cat(name_, ": encrypted frame ", counter_, " claims ", len,
                                " bytes, more than the limit of ", kMaxSealedPlaintext));
    return kSealOverhead + len;
}

wire::FrameType FrameOpener::check_prefix(std::span<const std::byte> sealed) const {
    sealed_size(sealed);
    // Checked by the tag too (the AAD holds the type); a bad value is refused early.
    auto type = static_cast<wire::FrameType>(sealed[0]);
    if (!wire::known_frame_type(std::to_integer<uint8_t>(sealed[0])))
        throw ProtocolError(cat(name_, ": encrypted frame ", counter_, " of unknown type ",
                                std::to_integer<unsigned>(sealed[0])));
    if (sealed[1] != std::byte{0} || sealed[2] != std::byte{0} || sealed[3] != std::byte{0})
        throw ProtocolError(cat(name_, ": reserved bytes set in encrypted frame ", counter_));
    return type;
}

void FrameOpener::failed() const {
    throw ProtocolError(cat(name_, ": encrypted frame ", counter_,
                            " failed authentication (tampered, replayed, reordered or dropped frame, "
                            "or a different key)"));
}

wire::FrameType FrameOpener::open(std::span<const std::byte> sealed, std::vector<std::byte>& plain) {
    size_t want = sealed_size(sealed);
    auto type = check_prefix(sealed);
    if (sealed.size() != want)
        throw ProtocolError(cat(name_, ": encrypted frame ", counter_, " is ", sealed.size(),
                                " bytes where its length says ", want, " (truncated or padded)"));
    auto len = static_cast<uint32_t>(want - kSealOverhead);
    plain.resize(len);
    auto iv = nonce(salt_, counter_);
    auto a = aad(type, channel_, counter_, len);
    const auto* in = reinterpret_cast<const unsigned char*>(sealed.data());
    unsigned char tag[kTagSize];
    std::memcpy(tag, in + kSealPrefix + len, kTagSize);
    int n = 0;
    bool ok = EVP_DecryptInit_ex(ctx_.get(), nullptr, nullptr, nullptr, iv.data()) == 1 &&
              EVP_DecryptUpdate(ctx_.get(), nullptr, &n, a.data(), kAadSize) == 1;
    if (ok && len)
        ok = EVP_DecryptUpdate(ctx_.get(), reinterpret_cast<unsigned char*>(plain.data()), &n,
                               in + kSealPrefix, static_cast<int>(len)) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag) == 1;
    if (!ok || EVP_DecryptFinal_ex(ctx_.get(), tag, &n) != 1) {
        std::fill(plain.begin(), plain.end(), std::byte{0});  // never hand out unauthenticated bytes
        plain.clear();
        failed();
    }
    ++counter_;
    return type;
}

size_t FrameOpener::begin(std::span<const std::byte> prefix) {
    open_ = false;
    if (prefix.size() != kSealPrefix)
        throw ProtocolError(cat(name_, ": encrypted frame ", counter_, " prefix of ", prefix.size(), " bytes"));
    type_ = check_prefix(prefix);
    auto len = wire::get_le<uint32_t>(prefix.data() + 4);
    auto iv = nonce(salt_, counter_);
    auto a = aad(type_, channel_, counter_, len);
    int n = 0;
    if (EVP_DecryptInit_ex(ctx_.get(), nullptr, nullptr, nullptr, iv.data()) != 1 ||
        EVP_DecryptUpdate(ctx_.get(), nullptr, &n, a.data(), kAadSize) != 1)
        failed();
    left_ = len;
    open_ = true;
    return len;
}

void FrameOpener::decrypt_in_place(std::span<std::byte> data) {
    if (!open_ || data.size() > left_)
        throw ProtocolError(cat(name_, ": encrypted frame ", counter_, " decrypted past its length"));
    if (data.empty()) return;
    auto* p = reinterpret_cast<unsigned char*>(data.data());
    int n = 0;
    if (EVP_DecryptUpdate(ctx_.get(), p, &n, p, static_cast<int>(data.size())) != 1 || size_t(n) != data.size())
        failed();
    left_ -= data.size();
}

wire::FrameType FrameOpener::finish(std::span<const std::byte> tag) {
    if (!open_ || left_ != 0 || tag.size() != kTagSize)
        throw ProtocolError(cat(name_, ": encrypted frame ", counter_, " finished before all of it arrived"));
    open_ = false;
    unsigned char t[kTagSize];
    std::memcpy(t, tag.data(), kTagSize);
    int n = 0;
    if (EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, t) != 1 ||
        EVP_DecryptFinal_ex(ctx_.get(), t, &n) != 1)
        failed();
    ++counter_;
    return type_;
}

}  // namespace rmig::security
