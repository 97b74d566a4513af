#!/usr/bin/env bash
# Channel-mode convergence (issue 15, docs/convergence.md): the paced test
# guest (rmig-test-guest-paced.img: 191 MiB of non-zero memory, a 128 MiB
# working set rewritten with a spin after each page, so QEMU's throttle slows
# its writes as it slows the vCPU) migrated through rmig over a loopback
# shaped by tc tbf in a network namespace made here (removed on exit). The
# link is set to the guest's dirty rate divided by each ratio, and three
# variants alternate (rmig-lab converge):
#   steered       rmig's default: auto-converge, throttle planned by rmig
#   qemu-default  --no-auto-converge: QEMU's own default, no throttle
#   by-hand       --cpu-throttle-initial 20 --cpu-throttle-increment 10:
#                 auto-converge as a user would turn it on
# For each ratio it prints completed runs, median total time and blackout,
# the most QEMU throttled the guest, and the dirty/link ratio QEMU itself
# measured (its first dirty rate against its send rate). It reports, it
# does not judge.
#
# usage: bench/scripts/convergence_channel.sh [BUILD_DIR] [options]
#   --ratios "R ..."  dirty rate / link (default "1/4 1/2 1 2")
#   --dirty-mbps N    the guest's unthrottled dirty rate in Mbit/s, from
#                     which the link rates follow (default 360: about 45 MB/s,
#                     what the paced guest writes on a 2-core host)
#   --rates "R ..."   tc tbf rates instead of ratios (e.g. "1gbit 500mbit")
#   --image FILE      guest image (default BUILD_DIR/guest/rmig-test-guest-paced.img;
#                     rmig-test-guest.img is the memset-speed guest)
#   --runs N          runs per variant and rate (default 3)
#   --budget MS       blackout budget (default 300)
#   --timeout S       a run not done by then has not converged (default 60)
#   --ram MIB         guest RAM (default 256)
#   --json DIR        write RATE.json per rate there
# Needs root (ip netns, tc). Exit codes: 0 done, 2 bad usage or a missing tool.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
if [[ $# -gt 0 && $1 != --* ]]; then build=$1; shift; fi
ratios="1/4 1/2 1 2" dirty_mbps=360 rates="" image="" runs=3 budget=300 timeout=60 ram=256 json=""
usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --ratios) ratios=$2; shift 2 ;;
    --dirty-mbps) dirty_mbps=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
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
image=${image:-$build/guest/rmig-test-guest-paced.img}
marker=()  # the paced guest writes a serial marker per 4 MiB: the lab times it
[[ $(basename "$image") == rmig-test-guest-paced.img ]] && marker=(--marker-mib 4)
[[ -f $image ]] || die "$image not found; build target rmig_test_guest"
if [[ -z $rates ]]; then
    for r in $ratios; do
        [[ $r =~ ^[0-9]+(/[0-9]+)?$ ]] || die "--ratios: '$r' is not N or N/M"
        num=${r%/*} den=1
        [[ $r == */* ]] && den=${r#*/}
        rates+="$(( dirty_mbps * den / num ))mbit "
    done
fi

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
    echo "== link $rate (tc tbf on the namespace's loopback, 20 ms queue), blackout budget $budget ms, guest $(basename "$image") =="
    ip netns exec "$ns" env RMIG_GUEST_IMAGE="$image" timeout $((runs * 3 * (timeout + 90))) \
        "$lab" converge "${marker[@]}" --runs "$runs" --ram "$ram" --blackout-budget "$budget" --timeout "$timeout" "${out[@]}"
done
exit 0
