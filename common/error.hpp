// Errors in rmig carry context: what was being done, on which peer, channel or
// device, and why. Every layer that catches and rethrows adds its own context.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace rmig {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A peer sent bytes that break the wire protocol (bad magic, checksum, order...).
class ProtocolError : public Error {
public:
    using Error::Error;
};

// The connection ended inside a frame. A protocol error to a plain channel
// (the frame is lost), a link loss to channel mode's flows, which resend it.
class TruncatedError : public ProtocolError {
public:
    using ProtocolError::ProtocolError;
};

// The link or the peer went away (EOF, reset, timeout).
class LinkError : public Error {
public:
    using Error::Error;
};

template <class... Args>
std::string cat(const Args&... args) {
    std::ostringstream out;
    (out << ... << args);
    return out.str();
}

// Throws Error("<what>: <strerror(err)>").
[[noreturn]] void throw_errno(const std::string& what, int err);
[[noreturn]] void throw_errno(const std::string& what);  // uses errno

}  // namespace rmig
