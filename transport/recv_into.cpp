// Channel::recv_into for backends without a native one: the whole frame into
// a buffer, then copied out piece by piece.
#include <cstring>

#include "common/error.hpp"
#include "transport/channel.hpp"

namespace rmig::transport {

namespace {

class BufferReader final : public PayloadReader {
public:
    BufferReader(std::span<const std::byte> data, const std::string& channel) : data_(data), channel_(channel) {}
    void read(std::span<const std::span<std::byte>> pieces) override {
        for (auto p : pieces) {
            if (p.size() > left())
                throw ProtocolError(cat(channel_, ": read of ", p.size(), " bytes past the payload (", left(),
                                        " left)"));
            if (!p.empty()) std::memcpy(p.data(), data_.data() + at_, p.size());
            at_ += p.size();
        }
    }
    size_t left() const override { return data_.size() - at_; }

private:
    std::span<const std::byte> data_;
    const std::string& channel_;
    size_t at_ = 0;
};

}  // namespace

wire::FrameType Channel::recv_into(const PayloadConsumer& consume) {
    thread_local std::vector<std::byte> buf;
    wire::FrameType type = recv(buf);
    BufferReader reader(buf, name());
    consume(type, buf.size(), reader);
    if (reader.left() != 0)
        throw ProtocolError(cat(name(), ": ", reader.left(), " payload bytes left unread"));
    return type;
}

}  // namespace rmig::transport
