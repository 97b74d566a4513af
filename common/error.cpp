#include "common/error.hpp"

#include <cerrno>
#include <cstring>

namespace rmig {

void throw_errno(const std::string& what, int err) {
    std::string msg = what + ": " + std::strerror(err);
    if (err == EPIPE || err == ECONNRESET || err == ECONNREFUSED || err == ETIMEDOUT ||
        err == ENOTCONN || err == ECONNABORTED || err == EHOSTUNREACH || err == ENETUNREACH)
        throw LinkError(msg);
    throw Error(msg);
}

void throw_errno(const std::string& what) { throw_errno(what, errno); }

}  // namespace rmig
