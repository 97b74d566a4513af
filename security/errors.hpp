// The error a failed authentication raises: the peer is not who it must be
// (wrong key, certificate, token) or did not finish proving it in time.
#pragma once

#include "common/error.hpp"

namespace rmig::security {

class AuthError : public Error {
public:
    using Error::Error;
};

// The receiver authenticated the peer and then turned the channel away
// (busy, unknown session): the same answer a refused hello gives, sent once
// the peer had proved who it is (docs/security.md, "Listeners under a flood").
class Refused : public Error {
public:
    using Error::Error;
};

}  // namespace rmig::security
