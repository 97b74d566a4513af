#!/usr/bin/env bash
# rmig's rdma transport against ib_write_bw (perftest) on the same RDMA device
# in the same run, same message size: prints both and the ratio (target >= 0.9).
#
# usage: bench/scripts/rdma_vs_ib_write_bw.sh [BUILD_DIR] [ADDR] [DEVICE]
#   BUILD_DIR  build tree with bench/rmig-transport-bench (default build/)
#   ADDR       IP of the local RDMA interface (default $RMIG_VM_RDMA_IP, 10.11.12.1)
#   DEVICE     verbs device for ib_write_bw (default $RMIG_VM_RDMA_DEV, else the first)
# environment: SIZE (message bytes; default 256K = rmig's ring slot), BYTES per run
# (default 256M), ROUNDS (default 3), STREAMS (default 1).
#
# Without RDMA hardware, run it inside the Soft-RoCE VM:
#   tests/rdma/vm/run-in-vm.sh -- bench/scripts/rdma_vs_ib_write_bw.sh build
set -euo pipefail

BUILD=${1:-build}
ADDR=${2:-${RMIG_VM_RDMA_IP:-10.11.12.1}}
DEV=${3:-${RMIG_VM_RDMA_DEV:-}}
SIZE=${SIZE:-262144}
BYTES=${BYTES:-268435456}
ROUNDS=${ROUNDS:-3}
STREAMS=${STREAMS:-1}
BENCH="$BUILD/bench/rmig-transport-bench"

die() { echo "rdma_vs_ib_write_bw: $*" >&2; exit 2; }
[[ -x $BENCH ]] || die "$BENCH not built"
command -v ib_write_bw >/dev/null || die "ib_write_bw missing (apt-get install perftest)"
[[ -n $DEV ]] || DEV=$(ibv_devices | awk 'NR > 2 { print $1; exit }')
[[ -n $DEV ]] || die "no RDMA device (ibv_devices lists none)"
iters=$((BYTES / SIZE))
# rmig frames carry a 32-byte header in the same slot: the payload is SIZE - 32,
# so both tools put SIZE bytes on the wire per message.
chunk=$((SIZE - 32))

run_ib() {
    local port=$((18515 + RANDOM % 1000)) out=/tmp/ib_write_bw.$$
    timeout 120 ib_write_bw -d "$DEV" -R -s "$SIZE" -n "$iters" -q "$STREAMS" -p "$port" \
        --report_gbits >/dev/null 2>&1 &
    local srv=$!
    for _ in $(seq 50); do
        if timeout 120 ib_write_bw -d "$DEV" -R -s "$SIZE" -n "$iters" -q "$STREAMS" -p "$port" \
            --report_gbits "$ADDR" >"$out" 2>&1; then
            wait "$srv" || true
            # Columns: #bytes #iterations BW-peak BW-average MsgRate
            awk -v s="$SIZE" '$1 == s { print $4 * 1e9 }' "$out" | tail -1
            rm -f "$out"
            return
        fi
        sleep 0.2
    done
    kill "$srv" 2>/dev/null || true
    cat "$out" >&2
    die "ib_write_bw client failed"
}

run_rmig() {
    "$BENCH" --listen "rdma:$ADDR:0" --bytes "$BYTES" --streams "$STREAMS" --chunk "$chunk" \
        --timeout 120 --json | jq -r .bits_per_second
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "device $DEV at $ADDR, message $SIZE bytes, $BYTES bytes per run, $STREAMS queue pair(s)," \
     "$ROUNDS alternating rounds"
ib=(); rm_=()
for ((r = 1; r <= ROUNDS; r++)); do
    a=$(run_ib); b=$(run_rmig)
    ib+=("$a"); rm_+=("$b")
    printf '  round %d  ib_write_bw %8.3f Gb/s   rmig %8.3f Gb/s\n' "$r" \
        "$(awk -v x="$a" 'BEGIN{print x/1e9}')" "$(awk -v x="$b" 'BEGIN{print x/1e9}')"
done
mi=$(median "${ib[@]}"); mr=$(median "${rm_[@]}")
awk -v i="$mi" -v r="$mr" 'BEGIN {
    printf "median       ib_write_bw %8.3f Gb/s   rmig %8.3f Gb/s   ratio %.3f (target >= 0.90)\n",
           i / 1e9, r / 1e9, r / i }'
