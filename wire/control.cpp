#include "wire/control.hpp"

#include "common/error.hpp"

namespace rmig::wire {

using nlohmann::json;

std::string encode_control(const json& msg) { return msg.dump(); }

json decode_control(FrameType type, std::span<const std::byte> payload, const std::string& channel) {
    std::string text(reinterpret_cast<const char*>(payload.data()), payload.size());
    switch (type) {
    case FrameType::control: break;
    case FrameType::abort: throw Error(cat(channel, ": peer aborted: ", text));
    case FrameType::end: throw LinkError(cat(channel, ": peer closed the control channel"));
    default:
        throw ProtocolError(cat(channel, ": unexpected ", to_string(type), " frame on the control channel"));
    }
    json msg = json::parse(text, nullptr, false);
    if (msg.is_discarded() || !msg.is_object())
        throw ProtocolError(cat(channel, ": control message is not a JSON object"));
    return msg;
}

void check_reply(const json& request, const json& reply) {
    if (!reply.value("ok", false))
        throw Error(cat("destination refused '", request.value("op", "?"), "': ",
                        reply.value("error", std::string("no reason given"))));
}

}  // namespace rmig::wire
