#!/usr/bin/env bash
# QEMU's own TCP migration against rmig across emulated long-distance links
# (rmig-wan: two network namespaces joined by a userspace forwarder with real
# delay, rate, loss and outages; docs/wan-emulator.md), on a guest whose RAM
# holds a realistic mix (rmig-lab wan; docs/benchmarks.md says why it is
# realistic). For each shape below, one run per mode, in this order:
#   direct-1, direct-mf4, direct-mf8, direct-mf8-zstd   QEMU to QEMU over TCP,
#       tuned as a user would: multifd, multifd with zstd, max-bandwidth
#       10 GB/s, the same downtime limit
#   rmig   rmig migrate/receive with the profile for the shape
# The hosts' kernel TCP (--host): stock is Debian 12's own (cubic, autotuning
# up to 6 MiB receive / 4 MiB send buffers): QEMU has no TCP knobs of its
# own, while rmig picks its connections' congestion control and buffers
# from the RTT it measures. tuned raises both namespaces to what an operator
# tuning for long links would set (bbr, 64 MiB buffers), for QEMU too.
# Every run's destination memory is verified byte for byte against the
# source. Prints each run and rmig's total time against QEMU's best.
#
# Shapes (--shapes picks some, comma-separated):
#   50ms       1 Gbit/s, 50 ms RTT                     goal: rmig <= 0.7x QEMU's best
#   150ms-loss 1 Gbit/s, 150 ms RTT, 0.1% loss         goal: rmig <= 0.4x, link busy >= 90%
#   outage     1 Gbit/s, 150 ms RTT, 10 s outage at 8 s that resets every
#              connection (a firewall failing over)   goal: rmig completes, QEMU fails
#   2paths     0.5 + 1 Gbit/s paths, 50 ms RTT        goal: rmig >= 0.9 of the summed rate
#   postcopy   1 Gbit/s, 150 ms RTT; modes direct-postcopy (QEMU's own
#              post-copy from the start) and rmig-postcopy (--postcopy-after 0,
#              the wan-1g-150ms profile's link options without multifd): the
#              post-copy phase, switch until the paused destination has every
#              page (issue 14); not in the default --shapes
#
# usage: bench/scripts/wan_vs_qemu.sh [BUILD_DIR] [options]
#   --shapes LIST   (default 50ms,150ms-loss,outage,2paths)
#   --ram MIB       guest RAM (default 2048)
#   --modes LIST    rmig-lab wan --modes (default: all)
#   --json DIR      one JSON file per shape there
#   --host KIND     stock (default) or tuned kernel TCP in both namespaces
#   --timeout S     a run not done by then counts as not finished (default 600)
# Needs root (namespaces, TUN). Exit: 0 done (it reports, it does not judge),
# 1 an rmig run failed or was not verified, 2 bad usage or a missing tool.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
if [[ $# -gt 0 && $1 != --* ]]; then build=$1; shift; fi
shapes=50ms,150ms-loss,outage,2paths ram=2048 modes="" json="" host=stock timeout=600
usage() { sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --shapes) shapes=$2; shift 2 ;;
    --ram) ram=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --host) host=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "wan_vs_qemu: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
die() { echo "wan_vs_qemu: $*" >&2; exit 2; }
case $host in
stock) host_tcp=(--cc cubic) ;;
tuned) host_tcp=(--cc bbr --tcp-buffer 64M) ;;
*) die "unknown --host $host (stock or tuned)" ;;
esac
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces and TUN devices)"
[[ -c /dev/net/tun ]] || die "needs /dev/net/tun"
lab=$build/lab/rmig-lab
wan=$build/lab/wan/rmig-wan
[[ -x $lab && -x $wan ]] || die "$lab or $wan not found; build first (scripts/build.sh $build)"
[[ -n $json ]] && mkdir -p "$json"

link=rmigwan$$
wan_pid=""
down() {
    if [[ -n $wan_pid ]]; then kill "$wan_pid" 2>/dev/null || true; wait "$wan_pid" 2>/dev/null || true; fi
    "$wan" down --name "$link" >/dev/null 2>&1 || true
    wan_pid=""
}
trap down EXIT

up() {  # rmig-wan shape options...
    down
    rm -f "/tmp/$link.ready"
    "$wan" up --name "$link" "${host_tcp[@]}" --ready-file "/tmp/$link.ready" --duration 7200 "$@" \
        >"/tmp/$link.log" 2>&1 &
    wan_pid=$!
    for _ in $(seq 100); do [[ -f /tmp/$link.ready ]] && return 0; sleep 0.1; done
    die "rmig-wan did not come up (see /tmp/$link.log)"
}

status=0
for shape in ${shapes//,/ }; do
    mbit=1000 extra_modes=""
    case $shape in
    50ms)
        up --delay 25ms --rate 1gbit
        rmig_args="--profile wan-1g-50ms" ;;
    150ms-loss)
        up --delay 75ms --rate 1gbit --loss 0.1%
        rmig_args="--profile wan-1g-150ms" ;;
    outage)
        # The outage clock starts with each migration (--outage-clock
        # signal: rmig-lab signals rmig-wan as it starts the migration, after
        # the guests booted and loaded their memory), 8 s in; the link comes
        # up again for each mode (below). :reset: once the
        # path is back it resets every connection opened before (a stateful
        # firewall that failed over without its table), which is what ends a
        # real long-distance migration; a silent outage only pauses TCP,
        # and QEMU's migration survived it (docs/benchmarks.md).
        rmig_args="--profile wan-1g-150ms" ;;
    2paths)
        up --delay 25ms --rate 1gbit --path2 "delay=25ms,rate=500mbit"
        mbit=1500
        rmig_args="--profile wan-1g-50ms --flows 4 --path tcp:10.201.1.2:7411" ;;
    postcopy)
        up --delay 75ms --rate 1gbit
        rmig_args="--flows 2 --chunk 1M --socket-buffer 32M --window 64M --compress auto --reconnect-grace 30"
        extra_modes=direct-postcopy,rmig-postcopy ;;
    *) die "unknown shape $shape (50ms, 150ms-loss, outage, 2paths, postcopy)" ;;
    esac
    echo
    echo "== $shape ($host host TCP)"
    args=(wan --link "$link" --ram "$ram" --rmig-args "$rmig_args" --link-mbit "$mbit" --timeout "$timeout")
    run_modes=${modes:-$extra_modes}
    [[ -n $run_modes ]] && args+=(--modes "$run_modes")
    [[ -n $json ]] && args+=(--json "$json/$shape.json")
    if [[ $shape == outage ]]; then
        each=${modes:-direct-1,direct-mf4,direct-mf8,direct-mf8-zstd,rmig}
        for m in ${each//,/ }; do
            up --delay 75ms --rate 1gbit --outage 8+10:reset --outage-clock signal
            one=(wan --link "$link" --ram "$ram" --rmig-args "$rmig_args" --link-mbit "$mbit" --timeout "$timeout" --modes "$m"
                 --outage-signal "$wan_pid")
            [[ -n $json ]] && one+=(--json "$json/$shape-$m.json")
            "$lab" "${one[@]}" || { [[ $m == rmig ]] && status=1; }
        done
        continue
    fi
    # rmig runs as it ships: authenticated and AES-256-GCM encrypted (QEMU's
    # TCP is neither).
    "$lab" "${args[@]}" || status=1
done
exit $status
