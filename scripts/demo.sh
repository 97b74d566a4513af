#!/usr/bin/env bash
# The main job: installs what is missing, builds rmig, boots a real QEMU guest
# and live-migrates it to a second QEMU through rmig over TCP (loopback), with
# live progress, a summary, and verification of the guest on the destination.
# Options go to `rmig-lab demo` (try --help, --multifd 0, --ram 512, --keep).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh" "$root/build" | grep -vE '^\[[0-9]+/[0-9]+\]' || true
exec "$root/build/lab/rmig-lab" demo "$@"
