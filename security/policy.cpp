#include "security/policy.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "common/unique_fd.hpp"

namespace rmig::security {

bool is_loopback_uri(const std::string& uri) {
    std::string rest = uri;
    for (const char* scheme : {"tcp:", "rdma:", "dpdk:"})
        if (rest.rfind(scheme, 0) == 0) rest = rest.substr(std::string(scheme).size());
    net::HostPort hp;
    try {
        hp = net::parse_host_port(rest);
    } catch (const Error&) {
        return false;
    }
    return hp.host == "localhost" || hp.host == "::1" || hp.host.rfind("127.", 0) == 0;
}

void write_random_psk_file(const std::string& path) {
    unsigned char key[32];
    if (RAND_bytes(key, sizeof key) != 1) throw Error("no random bytes for a pre-shared key");
    std::string hex;
    for (unsigned char b : key) {
        static constexpr char kDigits[] = "0123456789abcdef";
        hex += kDigits[b >> 4];
        hex += kDigits[b & 15];
    }
    hex += '\n';
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) throw_errno(cat("creating pre-shared key file ", path));
    if (::write(fd.get(), hex.data(), hex.size()) != static_cast<ssize_t>(hex.size()))
        throw_errno(cat("writing pre-shared key file ", path));
}

}  // namespace rmig::security
