// transport::listen/connect: the URI's scheme picks a backend from the list
// (backend.hpp); nothing here names one.
#include "common/error.hpp"
#include "transport/backend.hpp"
#include "transport/channel.hpp"

namespace rmig::transport {

namespace {

struct Uri {
    const Backend* backend;
    std::string scheme;
    std::string rest;  // after "scheme:"
};

// "ucx" in "ucx:10.0.0.1:7000": a word that cannot be the host of a bare
// HOST:PORT (the rest has a colon) nor the first group of a bare IPv6 address
// (it has a letter past 'f').
bool names_a_scheme(std::string_view word, std::string_view rest) {
    if (word.empty() || word[0] < 'a' || word[0] > 'z' || rest.find(':') == std::string_view::npos) return false;
    bool past_hex = false;
    for (char c : word) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
        if (!ok) return false;
        past_hex |= c > 'f' && c <= 'z';
    }
    return past_hex;
}

Uri split(const std::string& uri) {
    auto colon = uri.find(':');
    if (colon != std::string::npos) {
        std::string scheme = uri.substr(0, colon), rest = uri.substr(colon + 1);
        if (const Backend* b = find_backend(scheme)) return {b, scheme, rest};
        if (names_a_scheme(scheme, rest))
            throw Error(cat("transport '", scheme, "' in '", uri, "' is unknown: this rmig has ",
                            compiled_in_schemes(), " (", compiled_in_uris(), ")"));
    }
    return {find_backend("tcp"), "tcp", uri};
}

// The backend of `u`, if compiled in.
const Backend& usable(const Uri& u) {
    if (!u.backend->compiled_in())
        throw Error(cat("transport '", u.scheme, "' is not built into this rmig (",
                        u.backend->description->build_hint, "); it has ", compiled_in_schemes()));
    return *u.backend;
}

}  // namespace

// Plain: security/ composes above this (security/secure_transport.hpp).
std::unique_ptr<Listener> listen(const std::string& uri, const Options& opts) {
    Uri u = split(uri);
    return usable(u).listen(u.rest, opts);
}

std::unique_ptr<Channel> connect(const std::string& uri, const wire::Hello& hello, const Options& opts) {
    Uri u = split(uri);
    return usable(u).connect(u.rest, hello, opts);
}

}  // namespace rmig::transport
