// Channel::send_filled for backends without registered send memory: the
// payload is filled into a buffer, then sent as send() would.
#include <utility>

#include "transport/channel.hpp"

namespace rmig::transport {

void Channel::send_filled(wire::FrameType type, size_t length, const PayloadFiller& fill) {
    // One buffer per thread, taken out while in use so a filler that itself
    // sends on another channel of this thread gets its own.
    thread_local std::vector<std::byte> spare;
    std::vector<std::byte> buf = std::move(spare);
    buf.resize(length);
    if (length) fill(buf, 0);
    send(type, buf);
    spare = std::move(buf);
}

}  // namespace rmig::transport
