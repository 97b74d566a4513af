#include "qemu-plugin/control_protocol.hpp"

#include "common/error.hpp"

namespace rmig::qemu {

using nlohmann::json;

void send_message(transport::Channel& ch, const json& msg) {
    std::string text = msg.dump();
    ch.send(wire::FrameType::control,
            std::as_bytes(std::span(text.data(), text.size())));
}

json recv_message(transport::Channel& ch) {
    std::vector<std::byte> buf;
    auto type = ch.recv(buf);
    std::string text(reinterpret_cast<const char*>(buf.data()), buf.size());
    switch (type) {
    case wire::FrameType::control: break;
    case wire::FrameType::abort: throw Error(cat(ch.name(), ": peer aborted: ", text));
    case wire::FrameType::end: throw LinkError(cat(ch.name(), ": peer closed the control channel"));
    default:
        throw ProtocolError(cat(ch.name(), ": unexpected ", wire::to_string(type),
                                " frame on the control channel"));
    }
    json msg = json::parse(text, nullptr, false);
    if (msg.is_discarded() || !msg.is_object())
        throw ProtocolError(cat(ch.name(), ": control message is not a JSON object"));
    return msg;
}

json request(transport::Channel& ch, const json& msg) {
    send_message(ch, msg);
    json reply = recv_message(ch);
    if (!reply.value("ok", false))
        throw Error(cat("destination refused '", msg.value("op", "?"), "': ",
                        reply.value("error", std::string("no reason given"))));
    return reply;
}

}  // namespace rmig::qemu
