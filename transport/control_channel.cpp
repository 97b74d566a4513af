#include "transport/control_channel.hpp"

#include <array>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace rmig::transport {

using nlohmann::json;

void send_message(Channel& ch, const json& msg) {
    std::string text = wire::encode_control(msg);
    ch.send(wire::FrameType::control, std::as_bytes(std::span(text.data(), text.size())));
}

json recv_message(Channel& ch) {
    std::vector<std::byte> buf;
    auto type = ch.recv(buf);
    return wire::decode_control(type, buf, ch.name());
}

json request(Channel& ch, const json& msg) {
    send_message(ch, msg);
    json reply = recv_message(ch);
    wire::check_reply(msg, reply);
    return reply;
}

void recv_pieces(Channel& ch, std::span<std::byte> into, const char* what, const char* peer) {
    using Pieces = std::span<const std::span<std::byte>>;
    std::vector<std::byte> other;
    size_t at = 0;
    do {
        auto type = ch.recv_into([&](wire::FrameType t, size_t len, PayloadReader& r) {
            if (t != wire::FrameType::data || len > into.size() - at) {
                other.resize(len);
                r.read(Pieces(std::array{std::span(other)}));
                if (t == wire::FrameType::data)
                    throw ProtocolError(cat(what, ": more than the ", into.size(), " bytes announced arrived"));
                return;
            }
            r.read(Pieces(std::array{into.subspan(at, len)}));
            at += len;
        });
        if (type == wire::FrameType::abort)
            throw Error(cat(peer, " aborted: ", std::string(reinterpret_cast<const char*>(other.data()), other.size())));
        if (type != wire::FrameType::data)
            throw ProtocolError(cat("expected ", what, ", got a ", wire::to_string(type), " frame"));
    } while (at < into.size());
}

}  // namespace rmig::transport
