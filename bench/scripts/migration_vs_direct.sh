#!/usr/bin/env bash
# Migrates the same test guest directly (QEMU to QEMU over a UNIX socket) and
# through rmig (rmig receive + rmig migrate over TCP loopback), with one stream
# and with multifd, alternating the modes run after run, and prints the median
# total time and downtime of each mode with the ratios rmig/direct.
# Also the blackout of each mode (source STOP -> destination RESUME, or loaded
# for direct), read by the lab from its QMP monitors.
# Targets (issue 11): total time ratio <= 1.25, rmig blackout <= direct + 10 ms.
# Usage: bench/scripts/migration_vs_direct.sh [BUILD_DIR] [rmig-lab bench options]
#   e.g. bench/scripts/migration_vs_direct.sh build --runs 7 --ram 1024
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
shift || true
exec "$build/lab/rmig-lab" bench "$@"
