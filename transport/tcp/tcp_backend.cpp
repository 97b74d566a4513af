#include "transport/tcp/tcp_backend.hpp"

namespace rmig::transport::tcp {

const BackendDescription& description() {
    static const BackendDescription kDescription{
        .scheme = "tcp",
        .uri = "tcp:HOST:PORT",
        .summary = "TCP streams with large buffers (a bare HOST:PORT means tcp)",
        .options = {"tcp transport", {}},
        .build_hint = "always built",
    };
    return kDescription;
}

}  // namespace rmig::transport::tcp
