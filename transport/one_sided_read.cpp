// OneSided's read side for backends without one-sided reads (can_read() is
// false): both entry points say so.
#include "common/error.hpp"
#include "transport/channel.hpp"

namespace rmig::transport {

RemoteRegion OneSided::expose_for_read(void* base, size_t size) {
    (void)base, (void)size;
    throw Error("this transport has no one-sided reads: memory cannot be exposed for them");
}

void OneSided::read(const RemoteRegion& from, uint64_t offset, void* local, size_t len) {
    (void)from, (void)offset, (void)local, (void)len;
    throw Error("this transport has no one-sided reads");
}

uint64_t OneSided::start_read(const RemoteRegion& from, uint64_t offset, void* local, size_t len) {
    if (len > kMaxStartedRead)
        throw Error(cat("a started one-sided read of ", len, " bytes is over the ", kMaxStartedRead, "-byte limit"));
    read(from, offset, local, len);
    return 0;
}

}  // namespace rmig::transport
