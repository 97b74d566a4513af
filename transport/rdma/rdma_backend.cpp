// The rdma backend's description: built whether or not rdma-core is, so its
// options are accepted (and hw-configs profiles that set them load) everywhere.
#include "transport/rdma/rdma_backend.hpp"

namespace rmig::transport::rdma {

namespace {

using K = OptionKind;

std::span<const OptionSpec> option_table() {
    static const RdmaOptions defaults;
    static const OptionSpec kOptions[] = {
        {.name = "rdma-slots", .kind = K::whole, .metavar = "N", .help = "rdma: ring slots per channel direction",
         .number_default = static_cast<double>(defaults.ring_slots), .min = 2, .max = 4096, .profile = true},
        {.name = "rdma-slot-size", .kind = K::size, .metavar = "SIZE", .help = "rdma: bytes per ring slot",
         .number_default = static_cast<double>(defaults.slot_bytes), .min = 4096, .max = 64 << 20, .profile = true},
    };
    return kOptions;
}

}  // namespace

const BackendDescription& description() {
    static const BackendDescription kDescription{
        .scheme = "rdma",
        .uri = "rdma:ADDR:PORT",
        .summary = "RC queue pairs over RoCE or InfiniBand (ADDR: an IP address of the RDMA device)",
        .options = {"rdma transport", option_table()},
        .build_hint = "rebuild with rdma-core installed: apt-get install libibverbs-dev librdmacm-dev, "
                      "or scripts/deps.sh",
    };
    return kDescription;
}

RdmaOptions rdma_options(const BackendSettings& tuning) {
    const OptionGroup& table = description().options;
    RdmaOptions o;
    o.ring_slots = static_cast<uint32_t>(tuning.whole(table, "rdma-slots"));
    o.slot_bytes = static_cast<uint32_t>(tuning.whole(table, "rdma-slot-size"));
    return o;
}

}  // namespace rmig::transport::rdma
