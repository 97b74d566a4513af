#!/usr/bin/env bash
# Encrypted vs plain rmig rdma channels, and sealing into the registered send
# slots vs sealing into a buffer that the channel copies (--sealed-copy), with
# ib_write_bw as the raw baseline, all in the same run, alternating rounds.
# Prints Gb/s and CPU seconds per GiB (sender + receiver threads) with ratios.
#
# usage: bench/scripts/rdma_encrypt.sh [BUILD_DIR] [ADDR] [DEVICE]
# environment: BYTES per run (default 32M), CHUNK (frame payload, default 1M),
# ROUNDS (default 3).
#
# Without RDMA hardware, in the Soft-RoCE VM with an AES-NI CPU model:
#   RMIG_VM_CPU=Westmere tests/rdma/vm/run-in-vm.sh -- bench/scripts/rdma_encrypt.sh build
set -euo pipefail

BUILD=${1:-build}
ADDR=${2:-${RMIG_VM_RDMA_IP:-10.11.12.1}}
DEV=${3:-${RMIG_VM_RDMA_DEV:-}}
BYTES=${BYTES:-33554432}
CHUNK=${CHUNK:-1048576}
ROUNDS=${ROUNDS:-3}
BENCH="$BUILD/bench/rmig-transport-bench"

die() { echo "rdma_encrypt: $*" >&2; exit 2; }
[[ -x $BENCH ]] || die "$BENCH not built"
command -v ib_write_bw >/dev/null || die "ib_write_bw missing (apt-get install perftest)"
command -v jq >/dev/null || die "jq missing"
[[ -n $DEV ]] || DEV=$(ibv_devices | awk 'NR > 2 { print $1; exit }')
[[ -n $DEV ]] || die "no RDMA device (ibv_devices lists none)"

run_ib() {  # Gb/s of ib_write_bw with 256 KiB messages (rmig's slot size)
    local port=$((18515 + RANDOM % 1000)) out=/tmp/ib_write_bw.$$ iters=$((BYTES / 262144))
    timeout 120 ib_write_bw -d "$DEV" -R -s 262144 -n "$iters" -p "$port" --report_gbits >/dev/null 2>&1 &
    local srv=$!
    for _ in $(seq 50); do
        if timeout 120 ib_write_bw -d "$DEV" -R -s 262144 -n "$iters" -p "$port" --report_gbits "$ADDR" \
            >"$out" 2>&1; then
            wait "$srv" || true
            awk '$1 == 262144 { print $4 }' "$out" | tail -1
            rm -f "$out"
            return
        fi
        sleep 0.2
    done
    kill "$srv" 2>/dev/null || true
    die "ib_write_bw client failed"
}

run_rmig() {  # prints "Gb/s cpu-s-per-GiB"
    "$BENCH" --listen "rdma:$ADDR:0" --bytes "$BYTES" --streams 1 --chunk "$CHUNK" --timeout 300 --json "$@" |
        jq -r '"\(.gbit_per_s) \((.sender_cpu_s + .receiver_cpu_s) / (.bytes / 1073741824))"'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "device $DEV at $ADDR, $BYTES bytes per run, frames of $CHUNK bytes, $ROUNDS alternating rounds"
grep -q -w aes /proc/cpuinfo && echo "CPU has AES-NI" || echo "CPU has no AES-NI"
ib=(); pg=(); pc=(); ig=(); ic=(); cg=(); cc=()
for ((r = 1; r <= ROUNDS; r++)); do
    i=$(run_ib)
    read -r a b < <(run_rmig --security none)
    read -r c d < <(run_rmig --security encrypt)
    read -r e f < <(run_rmig --security encrypt --sealed-copy)
    ib+=("$i"); pg+=("$a"); pc+=("$b"); ig+=("$c"); ic+=("$d"); cg+=("$e"); cc+=("$f")
    printf '  round %d  ib_write_bw %.3f Gb/s | plain %.3f Gb/s %.2f cpu-s/GiB | encrypt, sealed in place %.3f Gb/s %.2f cpu-s/GiB | encrypt, sealed then copied %.3f Gb/s %.2f cpu-s/GiB\n' \
        "$r" "$i" "$a" "$b" "$c" "$d" "$e" "$f"
done
awk -v i="$(median "${ib[@]}")" -v pg="$(median "${pg[@]}")" -v pc="$(median "${pc[@]}")" \
    -v ig="$(median "${ig[@]}")" -v ic="$(median "${ic[@]}")" -v cg="$(median "${cg[@]}")" \
    -v cc="$(median "${cc[@]}")" 'BEGIN {
    printf "median  ib_write_bw %.3f Gb/s\n", i
    printf "        plain                        %.3f Gb/s (%.2f of ib_write_bw)  %.2f cpu-s/GiB\n", pg, pg / i, pc
    printf "        encrypt, sealed in place     %.3f Gb/s (%.3f of plain)        %.2f cpu-s/GiB\n", ig, ig / pg, ic
    printf "        encrypt, sealed then copied  %.3f Gb/s (%.3f of plain)        %.2f cpu-s/GiB\n", cg, cg / pg, cc
    printf "        in place / copied: throughput %.3f, cpu per GiB %.3f\n", ig / cg, ic / cc }'
