// The error a failed authentication raises: the peer is not who it must be
// (wrong key, certificate, token) or did not finish proving it in time.
#pragma once

#include "common/error.hpp"

namespace rmig::security {

class AuthError : public Error {
public:
    using Error::Error;
};

}  // namespace rmig::security
