#!/usr/bin/env bash
# How fast the WAN emulator forwards on this machine: iperf3 through an
# `rmig-wan up` link with no rate limit, for each delay, stream count and
# congestion control given. Prints one row per case: receiver goodput,
# retransmissions, drops (the shape's and the TUN devices'), and the CPU the
# rmig-wan process used (all threads, user+system) per second of the test.
#
# Usage: lab/wan/measure_forwarding.sh BUILD_DIR [--delays "0 25ms"] [--streams "1 4"]
#          [--cc "cubic bbr"] [--seconds 8] [--omit 0] [--runs 1] [-- extra rmig-wan up options]
# --omit S leaves iperf3's first S seconds (slow start) out of the rate.
# Needs root, iperf3, jq. Each case brings a fresh link up (name rmigmeasure).
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR [options]}
shift
wan=$build/lab/wan/rmig-wan
delays="0 25ms" streams="1 4" ccs="cubic bbr" seconds=8 omit=0 runs=1 extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --delays) delays=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --cc) ccs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --omit) omit=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$wan" ] || { echo "no $wan (build the rmig-wan target)" >&2; exit 2; }
name=rmigmeasure
dir=$(mktemp -d)
wan_pid=""
cleanup() {
  [ -n "$wan_pid" ] && kill -TERM "$wan_pid" 2>/dev/null && wait "$wan_pid" 2>/dev/null || true
  "$wan" down --name $name >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf "%-6s %-5s %-7s %10s %9s %10s %10s %8s  %s\n" delay cc streams "Mbit/s" retrans "drop-link" "drop-tun" "cpu" "extra: ${extra[*]:-none}"
for delay in $delays; do for cc in $ccs; do for p in $streams; do for run in $(seq "$runs"); do
  "$wan" up --name $name --delay "$delay" --cc "$cc" --tcp-buffer 64M --ready-file "$dir/ready" --json \
    "${extra[@]}" > "$dir/counters.json" 2> "$dir/wan.log" &
  wan_pid=$!
  for _ in $(seq 100); do [ -f "$dir/ready" ] && break; sleep 0.05; done
  [ -f "$dir/ready" ] || { cat "$dir/wan.log" >&2; exit 1; }
  timeout $((seconds + omit + 20)) ip netns exec $name-b iperf3 -s -1 -B 10.201.0.2 -p 5201 > /dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do ip netns exec $name-b ss -Hltn 'sport = :5201' | grep -q . && break; sleep 0.05; done
  c0=$(cpu_ticks $wan_pid)
  ip netns exec $name-a timeout $((seconds + omit + 15)) iperf3 -c 10.201.0.2 -p 5201 -P "$p" -t "$seconds" -O "$omit" -J > "$dir/iperf.json" || true
  c1=$(cpu_ticks $wan_pid)
  wait $server || true
  kill -TERM $wan_pid; wait $wan_pid || true; wan_pid=""
  mbit=$(jq '.end.sum_received.bits_per_second / 1e6 | floor' "$dir/iperf.json")
  retr=$(jq '.end.sum_sent.retransmits' "$dir/iperf.json")
  dlink=$(jq '[.paths[0][] | objects | .dropped_queue + .dropped_loss + .dropped_outage + .dropped_overflow] | add' "$dir/counters.json")
  dtun=$(jq '[.paths[0][] | objects | .dropped_device_in + .dropped_device_out] | add' "$dir/counters.json")
  cpu=$(awk -v a="$c0" -v b="$c1" -v t="$ticks" -v s="$((seconds + omit))" 'BEGIN { printf "%.0f%%", (b - a) / t / s * 100 }')
  printf "%-6s %-5s %-7s %10s %9s %10s %10s %8s\n" "$delay" "$cc" "$p" "$mbit" "$retr" "$dlink" "$dtun" "$cpu"
done; done; done; done
