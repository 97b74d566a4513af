#!/usr/bin/env bash
# The guest's blackout through rmig on a throttled link: a network namespace
# (made here, removed on exit) whose loopback is shaped by a token bucket
# (tc tbf: RATE, a 20 ms queue), so every rmig TCP channel crosses a real
# kernel bottleneck. Runs `rmig-lab bench --rmig-only` inside it twice:
#   before: --qemu-downtime-limit LIMIT (QEMU gets the whole limit; rmig does
#           not steer it nor bound what it holds in flight: the old behaviour)
#   after:  rmig's default (QEMU gets the limit less rmig's measured drain,
#           and rmig's in-flight data is bounded from the measured rate)
# and prints, for each, blackout medians, the worst run and how many runs
# stayed within the limit. The guest rewrites a 16 MiB working set
# (rmig-test-guest-hot16m.img): the default 99 MiB cannot converge in 300 ms at
# 1 Gbit/s, with or without rmig.
#
# usage: bench/scripts/blackout_throttled.sh [BUILD_DIR] [options]
#   --rate R       link rate for tc tbf (default 1gbit)
#   --runs N       runs per mode and variant (default 7)
#   --limit MS     downtime limit (default 300)
#   --multifd N    channels of the multifd mode (default 2)
#   --only before|after   run one variant
#   --json DIR     write before.json / after.json there
# Needs root (ip netns, tc). Exit codes: 0 done (it reports, it does not
# judge), 1 a run failed, 2 bad usage or a missing tool.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
if [[ $# -gt 0 && $1 != --* ]]; then build=$1; shift; fi
rate=1gbit runs=7 limit=300 multifd=2 only="" json=""
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --rate) rate=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --multifd) multifd=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "blackout_throttled: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
die() { echo "blackout_throttled: $*" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || die "needs root (network namespace and tc)"
for t in ip tc; do command -v $t >/dev/null || die "$t is not installed (apt-get install iproute2)"; done
lab=$build/lab/rmig-lab
image=$build/guest/rmig-test-guest-hot16m.img
[[ -x $lab ]] || die "$lab not found; build first (cmake --build $build)"
[[ -f $image ]] || die "$image not found; build target rmig_test_guest"

ns=rmig-blackout-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" tc qdisc add dev lo root tbf rate "$rate" burst 256k latency 20ms ||
    die "tc tbf is not available in this kernel"
echo "link: loopback of namespace $ns shaped to $rate (tc tbf, 20 ms queue); downtime limit $limit ms"
ip netns exec "$ns" tc qdisc show dev lo

run() {  # NAME [extra rmig-lab options]
    local name=$1; shift
    local out=()
    [[ -n $json ]] && { mkdir -p "$json"; out=(--json "$json/$name.json"); }
    echo
    echo "== $name =="
    ip netns exec "$ns" env RMIG_GUEST_IMAGE="$image" timeout $((runs * 2 * 180)) \
        "$lab" bench --rmig-only --runs "$runs" --multifd "$multifd" --downtime-limit "$limit" "${out[@]}" "$@"
}
[[ -z $only || $only == before ]] && run before --qemu-downtime-limit "$limit"
[[ -z $only || $only == after ]] && run after
exit 0
