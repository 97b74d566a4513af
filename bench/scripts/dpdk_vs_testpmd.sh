#!/usr/bin/env bash
# rmig's dpdk transport against dpdk-testpmd on the same virtual device (memif,
# no hugepages), in the same run: testpmd txonly -> rxonly gives the raw rate of
# 1514-byte frames; rmig moves verified bytes over the same kind of memif pair
# with its reliable delivery (payload 1460 B per 1514-byte frame). Then rmig's
# goodput with 1% and 5% of its data frames dropped in the sender. Then 4
# channels on one queue pair against 4 channels on 4 queue pairs
# (rmig.queues=4, one poller each), printed as a ratio of the two.
#
# Usage: bench/scripts/dpdk_vs_testpmd.sh [BUILD_DIR] [SECONDS_PER_BASELINE] [RMIG_BYTES]
# ONLY=queues: run only the 1-vs-N queue comparison (QUEUES=N, default 4).
# Needs dpdk-testpmd (Debian dpdk-dev) and the rmig_dpdk_bulk_peer test binary.
set -euo pipefail

BUILD=${1:-build}
SECS=${2:-5}
BYTES=${3:-$((2 << 30))}
PEER=$BUILD/tests/transport/dpdk/rmig_dpdk_bulk_peer
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd missing (apt-get install dpdk-dev)" >&2; exit 2; }
[ -x "$PEER" ] || { echo "$PEER missing (ninja -C $BUILD rmig_dpdk_bulk_peer)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/rmig-dpdk-bench-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "/var/run/dpdk/rmig-tps-$$" "/var/run/dpdk/rmig-tpc-$$" 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

EAL="--no-huge -m 1024 --no-pci"

# Raw: testpmd txonly (client) -> rxonly (server); the median of the receiver's
# per-second Rx-bps samples, in Gb/s.
testpmd_gbps() {
  local sock=$WORK/testpmd.sock
  # testpmd loads every PMD plugin at start (~2-3 s here): give it that on top.
  timeout -s INT $((SECS + 10)) dpdk-testpmd -l 0,1 $EAL --file-prefix=rmig-tps-$$ \
    --vdev=net_memif0,role=server,socket=$sock -- --forward-mode=rxonly --auto-start \
    --stats-period=1 --total-num-mbufs=16384 >"$WORK/tps.log" 2>&1 &
  PIDS+=($!)
  local srv=$!
  # (memif sockets are abstract by default: wait for the log, not the file)
  for _ in $(seq 100); do grep -q "start packet forwarding" "$WORK/tps.log" && break; sleep 0.1; done
  timeout -s INT $((SECS + 5)) dpdk-testpmd -l 1,0 $EAL --file-prefix=rmig-tpc-$$ \
    --vdev=net_memif0,role=client,socket=$sock -- --forward-mode=txonly --txpkts=1514 \
    --auto-start --stats-period=1 --total-num-mbufs=16384 >"$WORK/tpc.log" 2>&1 || true
  wait "$srv" 2>/dev/null || true
  grep -o 'Rx-bps: *[0-9]*' "$WORK/tps.log" | awk '{print $2}' | awk '$1 > 0' | sort -n |
    awk '{v[NR]=$1} END {if (NR == 0) print 0; else printf "%.3f\n", v[int((NR+1)/2)] / 1e9}'
}

# rmig: server + client over a memif pair; prints the client's JSON line.
rmig_run() {  # channels bytes client-uri-suffix [client options...]
  local ch=$1 bytes=$2 suffix=$3; shift 3
  local sock=$WORK/rmig-$(date +%s%N).sock  # memif sockets are abstract: a fresh name per run
  "$PEER" server "dpdk:net_memif0,role=server,socket=$sock${SERVER_SUFFIX:-}" "$ch" "$bytes" --timeout-s 50 \
    >"$WORK/srv.out" 2>&1 &
  PIDS+=($!)
  local srv=$!
  for _ in $(seq 100); do grep -q listening "$WORK/srv.out" && break; sleep 0.05; done
  "$PEER" client "dpdk:net_memif0,role=client,socket=$sock$suffix" "$ch" "$bytes" \
    --timeout-s 50 "$@" >"$WORK/cli.out" 2>&1 || true
  wait "$srv" || { echo "server failed: $(tail -1 "$WORK/srv.out")" >&2; }
  grep '"role":"client"' "$WORK/cli.out" | tail -1
  grep -q '"role":"client","bytes"' "$WORK/cli.out" || { echo "client failed:" >&2; tail -3 "$WORK/cli.out" >&2; }
}

gbps() { sed -n 's/.*"gbps":\([0-9.]*\).*/\1/p'; }
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
NQ=${QUEUES:-4}
queues_compare() {
  echo "== rmig dpdk over memif, $NQ channels: 1 queue pair vs $NQ queue pairs ($((BYTES >> 20)) MiB each)"
  Q1=$(rmig_run "$NQ" "$BYTES" ""); echo "1 queue:  $Q1"
  QN=$(SERVER_SUFFIX=",rmig.queues=$NQ" rmig_run "$NQ" "$BYTES" ",rmig.queues=$NQ"); echo "$NQ queues: $QN"
  printf '%-34s %10s %8s\n' "rmig dpdk $NQ ch, 1 queue pair" "$(echo "$Q1" | gbps)" "1.00"
  printf '%-34s %10s %8s\n' "rmig dpdk $NQ ch, $NQ queue pairs" "$(echo "$QN" | gbps)" \
    "$(ratio "$(echo "$QN" | gbps)" "$(echo "$Q1" | gbps)")"
}
if [ "${ONLY:-}" = queues ]; then queues_compare; exit 0; fi

echo "== dpdk-testpmd txonly -> rxonly over memif, 1514-byte frames, ${SECS} s"
RAW=$(testpmd_gbps)
echo "raw: ${RAW} Gb/s"

echo "== rmig dpdk over memif: $((BYTES >> 20)) MiB, 2 channels, every byte verified"
R=$(rmig_run 2 "$BYTES" "")
echo "$R"
G=$(echo "$R" | gbps)

echo "== rmig dpdk with jumbo frames (MTU 9000, memif bsize=10240)"
RJ=$(SERVER_SUFFIX=",bsize=10240,rmig.mtu=9000" rmig_run 2 "$BYTES" ",bsize=10240,rmig.mtu=9000")
echo "$RJ"
GJ=$(echo "$RJ" | gbps)

echo "== rmig dpdk zero-copy send (extbuf from registered memory)"
RZ=$(rmig_run 2 "$BYTES" "" --zero-copy 1)
echo "$RZ"
GZ=$(echo "$RZ" | gbps)

LOSS_BYTES=$((BYTES / 4))
echo "== rmig dpdk with injected loss ($((LOSS_BYTES >> 20)) MiB each)"
R1=$(rmig_run 2 "$LOSS_BYTES" ",rmig.loss=0.01"); echo "1%: $R1"
R5=$(rmig_run 2 "$LOSS_BYTES" ",rmig.loss=0.05"); echo "5%: $R5"

echo
queues_compare
echo
printf '%-34s %10s %8s\n' "path" "Gb/s" "ratio"
printf '%-34s %10s %8s\n' "testpmd txonly->rxonly (raw)" "$RAW" "1.00"
printf '%-34s %10s %8s\n' "rmig dpdk (copy)" "$G" "$(ratio "$G" "$RAW")"
printf '%-34s %10s %8s\n' "rmig dpdk (jumbo, MTU 9000)" "$GJ" "$(ratio "$GJ" "$RAW")"
printf '%-34s %10s %8s\n' "rmig dpdk (zero-copy send)" "$GZ" "$(ratio "$GZ" "$RAW")"
printf '%-34s %10s %8s   retransmits %s\n' "rmig dpdk, 1% loss" "$(echo "$R1" | gbps)" \
  "$(ratio "$(echo "$R1" | gbps)" "$RAW")" "$(echo "$R1" | field retransmits)"
printf '%-34s %10s %8s   retransmits %s\n' "rmig dpdk, 5% loss" "$(echo "$R5" | gbps)" \
  "$(ratio "$(echo "$R5" | gbps)" "$RAW")" "$(echo "$R5" | field retransmits)"
