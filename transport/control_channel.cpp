#include "transport/control_channel.hpp"

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

}  // namespace rmig::transport
