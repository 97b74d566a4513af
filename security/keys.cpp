#include "security/keys.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include <cstring>
#include <memory>

#include "common/error.hpp"
#include "wire/byte_order.hpp"
#include "security/openssl_util.hpp"

namespace rmig::security {

namespace {

constexpr char kTokenMagic[4] = {'R', 'M', 'A', 'T'};
constexpr uint16_t kTokenVersion = 1;

using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OsslDeleter<EVP_PKEY_CTX_free>>;

void hkdf(const SessionSecret& ikm, std::span<const unsigned char> salt,
          std::span<const unsigned char> info, unsigned char* out, size_t len) {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
    if (!ctx || EVP_PKEY_derive_init(ctx.get()) <= 0 ||
        EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), salt.data(), static_cast<int>(salt.size())) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), ikm.data(), static_cast<int>(ikm.size())) <= 0 ||
        EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), info.data(), static_cast<int>(info.size())) <= 0 ||
        EVP_PKEY_derive(ctx.get(), out, &len) <= 0)
        throw Error(cat("deriving channel keys (HKDF-SHA256): ", openssl_errors()));
}

}  // namespace

FrameKey derive_frame_key(const SessionSecret& secret, const wire::SessionId& session,
                          uint32_t channel, Direction dir) {
    static constexpr char kLabel[] = "rmig v1 frame key";
    unsigned char info[sizeof kLabel - 1 + 1 + 4];
    std::memcpy(info, kLabel, sizeof kLabel - 1);
    info[sizeof kLabel - 1] = static_cast<unsigned char>(dir);
    wire::put_le<uint32_t>(reinterpret_cast<std::byte*>(info + sizeof kLabel), channel);
    SecretBytes<36> okm;
    hkdf(secret, {reinterpret_cast<const unsigned char*>(session.data()), session.size()}, info,
         okm.data(), okm.size());
    FrameKey k;
    std::memcpy(k.key.data(), okm.data(), 32);
    std::memcpy(k.salt.data(), okm.data() + 32, 4);
    return k;
}

ChannelToken channel_token(const SessionSecret& secret, const wire::SessionId& session, uint32_t channel) {
    static constexpr char kLabel[] = "rmig-channel";
    unsigned char msg[sizeof kLabel - 1 + 16 + 4];
    std::memcpy(msg, kLabel, sizeof kLabel - 1);
    std::memcpy(msg + sizeof kLabel - 1, session.data(), 16);
    wire::put_le<uint32_t>(reinterpret_cast<std::byte*>(msg + sizeof kLabel - 1 + 16), channel);
    ChannelToken t;
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), msg, sizeof msg, t.data(), &len) ||
        len != t.size())
        throw Error(cat("computing the channel token (HMAC-SHA256): ", openssl_errors()));
    return t;
}

std::vector<std::byte> encode_token_frame(const TokenFrame& t) {
    std::vector<std::byte> b(kTokenFrameSize);
    std::memcpy(b.data(), kTokenMagic, 4);
    wire::put_le<uint16_t>(&b[4], kTokenVersion);
    wire::put_le<uint16_t>(&b[6], 0);
    wire::put_le<uint32_t>(&b[8], t.channel);
    std::memcpy(&b[12], t.session.data(), 16);
    std::memcpy(&b[28], t.token.data(), 32);
    return b;
}

TokenFrame decode_token_frame(std::span<const std::byte> b, const std::string& peer) {
    if (b.size() != kTokenFrameSize)
        throw ProtocolError(cat(peer, ": channel token frame of ", b.size(), " bytes, expected ",
                                kTokenFrameSize));
    if (std::memcmp(b.data(), kTokenMagic, 4) != 0)
        throw ProtocolError(cat(peer, ": first frame is not a channel token (bad magic)"));
    if (auto v = wire::get_le<uint16_t>(&b[4]); v != kTokenVersion)
        throw ProtocolError(cat(peer, ": channel token version ", v, ", this build speaks ", kTokenVersion));
    if (wire::get_le<uint16_t>(&b[6]) != 0)
        throw ProtocolError(cat(peer, ": reserved bytes set in the channel token"));
    TokenFrame t;
    t.channel = wire::get_le<uint32_t>(&b[8]);
    std::memcpy(t.session.data(), &b[12], 16);
    std::memcpy(t.token.data(), &b[28], 32);
    return t;
}

bool token_matches(const TokenFrame& t, const SessionSecret& secret) {
    ChannelToken want = channel_token(secret, t.session, t.channel);
    return CRYPTO_memcmp(want.data(), t.token.data(), want.size()) == 0;
}

}  // namespace rmig::security
