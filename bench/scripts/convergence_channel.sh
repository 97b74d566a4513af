#!/usr/bin/env bash
# Channel-mode convergence (issue 15, docs/convergence.md): the test guest
# (its default image rewrites 99 MiB per pass, so it dirties memory as fast as
# TCG runs it) migrated through rmig over a loopback shaped by tc tbf in a
# network namespace made here (removed on exit), at several link rates, with
# three variants alternating (rmig-lab converge):
#   steered       rmig's default: auto-converge, throttle planned by rmig
#   qemu-default  --no-auto-converge: QEMU's own default, no throttle
#   by-hand       --cpu-throttle-initial 20 --cpu-throttle-increment 10:
#                 auto-converge as a user would turn it on
# For each rate it prints completed runs, median total time and blackout, and
# the most QEMU throttled the guest. It reports, it does not judge.
#
# usage: bench/scripts/convergence_channel.sh [BUILD_DIR] [options]
#   --rates "R ..."   tc tbf rates (default "2gbit 1gbit 500mbit")
#   --runs N          runs per variant and rate (default 3)
#   --budget MS       blackout budget (default 300)
#   --timeout S       a run not done by then has not converged (default 90)
#   --ram MIB         guest RAM (default 256)
#   --json DIR        write RATE.json per rate there
# Needs root (ip netns, tc). Exit codes: 0 done, 2 bad usage or a missing tool.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
if [[ $# -gt 0 && $1 != --* ]]; then build=$1; shift; fi
rates="2gbit 1gbit 500mbit" runs=3 budget=300 timeout=90 ram=256 json=""
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --rates) rates=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --ram) ram=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "convergence_channel: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
die() { echo "convergence_channel: $*" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || die "needs root (network namespace and tc)"
for t in ip tc; do command -v $t >/dev/null || die "$t is not installed (apt-get install iproute2)"; done
lab=$build/lab/rmig-lab
[[ -x $lab ]] || die "$lab not found; build first (cmake --build $build)"

ns=rmig-converge-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
for rate in $rates; do
    ip netns exec "$ns" tc qdisc replace dev lo root tbf rate "$rate" burst 256k latency 20ms ||
        die "tc tbf is not available in this kernel"
    out=()
    [[ -n $json ]] && { mkdir -p "$json"; out=(--json "$json/$rate.json"); }
    echo
    echo "== link $rate (tc tbf on the namespace's loopback, 20 ms queue), blackout budget $budget ms =="
    ip netns exec "$ns" timeout $((runs * 3 * (timeout + 90))) \
        "$lab" converge --runs "$runs" --ram "$ram" --blackout-budget "$budget" --timeout "$timeout" "${out[@]}"
done
exit 0
