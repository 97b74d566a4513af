#include "qemu-plugin/flow_attach.hpp"

#include <vector>

#include "common/error.hpp"
#include "security/deadline.hpp"

namespace rmig::qemu {

wire::Attach read_attach(transport::Channel& ch, transport::Millis timeout) {
    std::vector<std::byte> frame;
    wire::FrameType type;
    {
        security::ChannelDeadline deadline(ch, timeout);
        try {
            type = ch.recv(frame);
        } catch (const Error&) {
            if (deadline.expired())
                throw LinkError(cat(ch.name(), ": no attach frame within ", timeout.count(), " ms"));
            throw;
        }
    }
    if (type == wire::FrameType::abort)
        throw Error(cat(ch.name(), ": peer refused the flow: ",
                        std::string(reinterpret_cast<const char*>(frame.data()), frame.size())));
    if (type != wire::FrameType::attach)
        throw ProtocolError(cat(ch.name(), ": first frame is ", wire::to_string(type), ", not attach"));
    return wire::decode_attach(frame, ch.name());
}

void send_attach(transport::Channel& ch, const wire::Attach& mine) {
    ch.send(wire::FrameType::attach, wire::encode_attach(mine));
}

wire::Attach exchange_attach(transport::Channel& ch, const wire::Attach& mine, transport::Millis timeout) {
    send_attach(ch, mine);
    wire::Attach theirs = read_attach(ch, timeout);
    if (theirs.stream != mine.stream || theirs.flow != mine.flow)
        throw ProtocolError(cat(ch.name(), ": attach answered for stream ", theirs.stream, " flow ", theirs.flow,
                                ", asked for stream ", mine.stream, " flow ", mine.flow));
    return theirs;
}

}  // namespace rmig::qemu
