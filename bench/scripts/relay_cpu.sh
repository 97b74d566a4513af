#!/usr/bin/env bash
# CPU time per GiB moved by the channel-mode relay, next to its floors, in one run.
#
# usage: bench/scripts/relay_cpu.sh [--help] [BUILD_DIR]
#   BUILD_DIR   build tree holding bench/rmig-relay-bench (or $BUILD; default build/).
#               This script builds nothing.
# environment:
#   STREAMS  stream counts, space or comma separated (default "1 4")
#   MIB      MiB moved per run in total, split over the streams (default 1024)
#   RUNS     interleaved runs per stream count; medians are printed (default 5)
#   CHUNK    the relay's largest data frame in bytes (default: the relay's, 1 MiB)
#   BLOCK    openssl speed block size in bytes (default 262144: the relay's
#            frames are ~200 KiB to 1 MiB, and openssl's rate is flat above 16 KiB)
#   JSON     also write every figure to this file as JSON
#
# rmig-relay-bench moves the bytes once through one UNIX socket (raw: what a
# direct QEMU -> QEMU migration costs on one host) and once through
# SourceRelay -> TCP loopback -> DestRelay, plaintext and AES-256-GCM (PSK),
# and copies 256 MiB buffers (the memcpy floor); iperf3 (if installed) moves
# the same bytes over TCP loopback with 1 MiB writes and no checks: what the
# kernel's TCP hop alone costs, the relay's middle hop. Relay CPU is the process's
# user+sys time minus the QEMU stand-in threads' own (so: both relays). Then
# `openssl speed -evp aes-256-gcm` (encrypt and -decrypt) gives what one seal
# and one open of a GiB cost; the relay's AES cost is (AES - plaintext) CPU per
# GiB, which is one seal (source) plus one open (destination).
# Targets (issue 11): plaintext relay <= 2.0x memcpy; AES cost <= 1.2x openssl.
# Exit status: 0 done (whether or not a target is met: it reports, it does not
# judge), 1 a run failed, 2 bad usage or a missing tool.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
case "${1:-}" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
BUILD=${1:-${BUILD:-build}}
STREAMS=${STREAMS:-1 4}
MIB=${MIB:-1024}
RUNS=${RUNS:-5}
CHUNK=${CHUNK:-}
BLOCK=${BLOCK:-262144}
JSON=${JSON:-}

die() { echo "relay_cpu: $*" >&2; exit 2; }
BENCH="$BUILD/bench/rmig-relay-bench"
[[ -x "$BENCH" ]] || die "$BENCH not found; build it first: ninja -C $BUILD rmig-relay-bench"
for tool in openssl jq awk ss; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "bad RUNS '$RUNS'"
[[ "$MIB" =~ ^[1-9][0-9]*$ ]] || die "bad MIB '$MIB'"
[[ "$BLOCK" =~ ^[1-9][0-9]*$ ]] || die "bad BLOCK '$BLOCK'"
chunk_args=()
if [[ -n "$CHUNK" ]]; then
    [[ "$CHUNK" =~ ^[1-9][0-9]*$ ]] || die "bad CHUNK '$CHUNK'"
    chunk_args=(--chunk "$CHUNK")
fi

# openssl speed prints the rate in 1000s of bytes per (user CPU) second on its last line.
openssl_s_per_gib() {
    local k
    k=$(openssl speed -evp aes-256-gcm "$@" -bytes "$BLOCK" -seconds 1 2>/dev/null |
        awk 'END { sub(/k$/, "", $NF); print $NF }')
    [[ -n "$k" ]] || { echo "relay_cpu: openssl speed failed" >&2; exit 1; }
    awk -v k="$k" 'BEGIN { printf "%.4f", 1073741824 / (k * 1000) }'
}
# CPU seconds per GiB of iperf3 over loopback (client + server, from its own
# cpu_utilization_percent over the transfer), S streams in one client; empty
# without iperf3.
iperf3_s_per_gib() {
    command -v iperf3 >/dev/null || return 0
    local port out pid
    for _ in 1 2 3 4 5 6 7 8; do
        port=$((20000 + RANDOM % 30000))
        ss -Htln "sport = :$port" | grep -q . || break
    done
    iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do ss -Htln "sport = :$port" | grep -q . && break; sleep 0.02; done
    out=$(iperf3 -c 127.0.0.1 -p "$port" -P "$1" -n "$(($2 << 20))" -l 1048576 -J 2>/dev/null) || true
    wait "$pid" 2>/dev/null || true
    jq -r '.end | (.cpu_utilization_percent.host_total + .cpu_utilization_percent.remote_total) / 100
           * .sum_received.seconds / (.sum_received.bytes / 1073741824) | tostring' <<<"$out" 2>/dev/null || true
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

load=$(cut -d' ' -f1 /proc/loadavg)
echo "relay CPU per GiB, $(nproc) cores, load average $load at start$(awk -v l="$load" 'BEGIN { if (l > 0.5) printf " (shared machine: expect noise)" }')"
results='{}'
for s in ${STREAMS//,/ }; do
    [[ "$s" =~ ^[1-9][0-9]*$ ]] || die "bad stream count '$s'"
    per=$((MIB / s))
    (( per > 0 )) || die "MIB=$MIB is less than 1 MiB per stream for $s streams"
    # RUNS single runs, each followed by openssl, so load changes hit all alike.
    runs='[]' enc=() dec=() tcp=()
    for _ in $(seq "$RUNS"); do
        out=$("$BENCH" --security both --json "${chunk_args[@]}" "$s" "$per" 1 2>/dev/null) ||
            { echo "relay_cpu: rmig-relay-bench failed for $s streams" >&2; exit 1; }
        runs=$(jq -c --argjson r "$out" '. + [$r]' <<<"$runs")
        enc+=("$(openssl_s_per_gib)")
        dec+=("$(openssl_s_per_gib -decrypt)")
        t=$(iperf3_s_per_gib "$s" "$MIB")
        [[ -n "$t" ]] && tcp+=("$t")
    done
    iperf=$( ((${#tcp[@]})) && printf '%s\n' "${tcp[@]}" | median || echo 0)
    m() { jq -r "[.[] | $1] | sort | .[(length - 1) / 2 | floor]" <<<"$runs"; }
    floor=$(m .memcpy_cpu_s_per_gib) raw=$(m .raw.cpu_s_per_gib) plain=$(m .relay.cpu_s_per_gib)
    aes=$(m .relay_aes.cpu_s_per_gib)
    raw_rate=$(m .raw.rate_bytes_per_s) plain_rate=$(m .relay.rate_bytes_per_s) aes_rate=$(m .relay_aes.rate_bytes_per_s)
    # Per run, so the AES cost subtracts a plaintext run of the same moment.
    added=$(jq -r '[.[] | .relay_aes.cpu_s_per_gib - .relay.cpu_s_per_gib] | sort | .[(length - 1) / 2 | floor]' <<<"$runs")
    ossl_enc=$(printf '%s\n' "${enc[@]}" | median) ossl_dec=$(printf '%s\n' "${dec[@]}" | median)
    echo
    echo "streams $s, $per MiB each, $RUNS runs, medians; CPU = both relays (stand-ins excluded)"
    awk -v f="$floor" -v r="$raw" -v p="$plain" -v a="$aes" -v rr="$raw_rate" -v pr="$plain_rate" -v ar="$aes_rate" \
        -v d="$added" -v oe="$ossl_enc" -v od="$ossl_dec" -v t="$iperf" 'BEGIN {
        printf "  %-36s %10s %10s %8s %8s\n", "", "GB/s", "CPU s/GiB", "/memcpy", "/raw"
        printf "  %-36s %10s %10.3f %8.2f\n", "memcpy, 256 MiB buffers (floor)", "", f, 1
        printf "  %-36s %10.2f %10.3f %8.2f %8.2f\n", "raw UNIX socket (QEMU direct)", rr / 1e9, r, r / f, 1
        if (t > 0) {
            printf "  %-36s %10s %10.3f %8.2f %8.2f\n", "TCP loopback alone (iperf3)", "", t, t / f, t / r
            printf "  %-36s %10s %10.3f %8.2f %8.2f\n", "  raw UNIX + TCP (the hops, no checks)", "", r + t, (r + t) / f, (r + t) / r
        }
        printf "  %-36s %10.2f %10.3f %8.2f %8.2f   target <= 2.00 x memcpy\n", "relay plaintext", pr / 1e9, p, p / f, p / r
        if (t > 0) printf "  %-36s %10s %10.2f\n", "  relay plaintext / (raw + TCP)", "", p / (r + t)
        printf "  %-36s %10.2f %10.3f %8.2f %8.2f\n", "relay AES-256-GCM", ar / 1e9, a, a / f, a / r
        printf "  %-36s %10s %10.3f\n", "  of which AES (AES - plaintext)", "", d
        printf "  %-36s %10s %10.3f   (seal %.3f + open %.3f)\n", "openssl speed, 1 seal + 1 open", "", oe + od, oe, od
        printf "  %-36s %10s %10.2f   target <= 1.20\n", "AES cost / openssl", "", d / (oe + od)
    }'
    results=$(jq -c --arg s "$s" --argjson runs "$runs" --argjson oe "$ossl_enc" --argjson od "$ossl_dec" \
        --argjson f "$floor" --argjson r "$raw" --argjson p "$plain" --argjson a "$aes" --argjson d "$added" --argjson t "$iperf" \
        '. + {($s): {runs: $runs, medians: {memcpy_cpu_s_per_gib: $f, raw_cpu_s_per_gib: $r,
          relay_cpu_s_per_gib: $p, relay_aes_cpu_s_per_gib: $a, aes_added_cpu_s_per_gib: $d,
          openssl_seal_s_per_gib: $oe, openssl_open_s_per_gib: $od, iperf3_tcp_cpu_s_per_gib: $t,
          relay_over_memcpy: ($p / $f), aes_over_openssl: ($d / ($oe + $od))}}}' <<<"$results")
done
if [[ -n "$JSON" ]]; then
    jq --arg load "$load" --arg block "$BLOCK" '{load_at_start: $load, openssl_block: $block, streams: .}' \
        <<<"$results" >"$JSON"
    echo "wrote $JSON"
fi
