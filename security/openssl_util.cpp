#include "security/openssl_util.hpp"

#include <openssl/err.h>

namespace rmig::security {

std::string openssl_errors() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? "no details from OpenSSL" : out;
}

}  // namespace rmig::security
