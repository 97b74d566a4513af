// `rmig tunnel-send` and `rmig tunnel-receive`: the long-lived relay for
// management stacks that drive QEMU themselves (qemu-plugin/tunnel_send.hpp).
#pragma once

#include <vector>

#include "common/args.hpp"

namespace rmig::cli {

std::vector<OptionGroup> tunnel_send_groups();
std::vector<OptionGroup> tunnel_receive_groups();
extern const char* const kTunnelSendAbout;
extern const char* const kTunnelReceiveAbout;

int tunnel_send_command(const Args& a);
int tunnel_receive_command(const Args& a);

}  // namespace rmig::cli
