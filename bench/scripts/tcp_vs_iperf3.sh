#!/usr/bin/env bash
# rmig tcp transport vs iperf3 on loopback, measured in the same run.
#
# usage: bench/scripts/tcp_vs_iperf3.sh [BUILD_DIR]
#   BUILD_DIR   build tree holding bench/rmig-transport-bench (or $BUILD; default build/).
#               This script builds nothing.
# environment:
#   BYTES    payload per run, same for both tools (default 4G; K/M/G/T are binary)
#   STREAMS  stream counts to compare, space or comma separated (default "1 4");
#            iperf3 gets -P S, rmig-transport-bench gets --streams S
#   ROUNDS   alternating iperf3/rmig rounds per stream count (default 3)
#   CHUNK    rmig frame payload size (default 1M)
#   TIMEOUT  seconds before one run is abandoned (default 120)
#   TARGET   ratio rmig/iperf3 the transport should reach (default 0.90)
#   IPERF_LEN  iperf3 -l (bytes per write/read); default CHUNK, so both tools move
#            the same units per syscall. "default" leaves iperf3's own 128K, which
#            is a weaker baseline (measured: ~25 vs ~35 Gbit/s on one stream).
#   IPERF    "single" (default): one iperf3 client -P S and one server, as usual;
#            "procs": S iperf3 client/server pairs at once, each -P 1 with
#            BYTES/S, summed (bytes / slowest stream's time). iperf3 before
#            3.16 runs all -P streams in one thread, so "procs" is the baseline
#            that may use as many cores as rmig's S sender/receiver threads.
#
# For each stream count it runs iperf3 (server -1 on a free 127.0.0.1 port,
# client -P S -n BYTES -l IPERF_LEN -J) and rmig-transport-bench with the same bytes
# and streams, alternating which goes first, and prints every run, the medians
# of the receiver throughput and the ratio rmig/iperf3 against the target. It
# exits 0 whether or not the target is met: it reports, it does not judge. It
# exits non-zero only when a tool is missing or a run fails.
#
# Loopback rates move with anything else the machine runs (the script says so
# when the load average is above 0.5); on a shared host use ROUNDS=5 or more.
set -euo pipefail

BUILD=${1:-${BUILD:-build}}
BYTES=${BYTES:-4G}
STREAMS=${STREAMS:-1 4}
ROUNDS=${ROUNDS:-3}
CHUNK=${CHUNK:-1M}
TIMEOUT=${TIMEOUT:-120}
TARGET=${TARGET:-0.90}
IPERF=${IPERF:-single}
IPERF_LEN=${IPERF_LEN:-$CHUNK}

BENCH="$BUILD/bench/rmig-transport-bench"
die() { echo "tcp_vs_iperf3: $*" >&2; exit 2; }
[[ -x "$BENCH" ]] || die "$BENCH not found; build it first: cmake --build $BUILD --target rmig-transport-bench"
for tool in iperf3 jq timeout ss numfmt python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
bytes=$(numfmt --from=iec "$BYTES") || die "bad BYTES '$BYTES'"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "bad ROUNDS '$ROUNDS'"
[[ "$IPERF" == single || "$IPERF" == procs ]] || die "bad IPERF '$IPERF' (single or procs)"
len_args=()
if [[ $IPERF_LEN != default ]]; then
    len=$(numfmt --from=iec "$IPERF_LEN") || die "bad IPERF_LEN '$IPERF_LEN'"
    len_args=(-l "$len")
fi

work=$(mktemp -d /tmp/tcp_vs_iperf3.XXXXXX)
server_pids=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts a one-off iperf3 server on a free 127.0.0.1 port; sets port.
start_server() {
    local log=$1 pid
    port=$(free_port)
    timeout "$((TIMEOUT + 10))" iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$log" 2>&1 &
    pid=$!
    server_pids+=("$pid")
    for _ in $(seq 100); do
        ss -Hltn "sport = :$port" | grep -q . && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "iperf3 server exited"; }
        sleep 0.05
    done
    die "iperf3 server did not listen on port $port within 5 s"
}

stop_servers() {
    local pid
    for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    server_pids=()
}

# One iperf3 measurement; sets bps, cpu_s (client cpu%), cpu_r (server cpu%).
# Runs in this shell (not a subshell) so the EXIT trap knows the servers' pids.
run_iperf3() {
    local streams=$1 i n=1 each=$bytes per=$1 pids=()
    if [[ $IPERF == procs ]]; then n=$streams; per=1; each=$((bytes / streams)); fi
    local ports=()
    for ((i = 0; i < n; i++)); do
        start_server "$work/server$i.log"
        ports+=("$port")
    done
    # All servers listen before any client starts, so the clients run together.
    for ((i = 0; i < n; i++)); do
        timeout "$TIMEOUT" iperf3 -c 127.0.0.1 -p "${ports[i]}" -P "$per" -n "$each" "${len_args[@]}" -J \
            >"$work/iperf3-$i.json" &
        pids+=($!)
    done
    for ((i = 0; i < n; i++)); do
        if ! wait "${pids[i]}"; then
            jq -r '.error // empty' "$work/iperf3-$i.json" >&2 2>/dev/null || true
            die "iperf3 client failed (-P $per -n $each)"
        fi
    done
    stop_servers
    # Receiver throughput: all bytes received over the slowest client's time.
    read -r bps cpu_s cpu_r < <(jq -rs '
        [(map(.end.sum_received.bytes) | add) * 8 / (map(.end.sum_received.seconds) | max),
         (map(.end.cpu_utilization_percent.host_total) | add),
         (map(.end.cpu_utilization_percent.remote_total) | add)]
        | map(tostring) | join(" ")' "$work"/iperf3-*.json)
    rm -f "$work"/iperf3-*.json
    [[ "$bps" =~ ^[0-9.e+]+$ ]] || die "no receiver throughput in iperf3's JSON"
}

# One rmig-transport-bench run; sets bps and cpu (cpu% of the whole process).
run_rmig() {
    local streams=$1 out="$work/rmig.json"
    timeout "$((TIMEOUT + 15))" "$BENCH" --bytes "$bytes" --streams "$streams" --chunk "$CHUNK" \
        --timeout "$TIMEOUT" --json >"$out" || die "rmig-transport-bench failed (--streams $streams)"
    read -r bps cpu < <(jq -r '[.bits_per_second, .cpu_percent] | map(tostring) | join(" ")' "$out")
    [[ "$bps" =~ ^[0-9.e+]+$ ]] || die "no throughput in rmig-transport-bench's JSON ($out)"
}

gbit() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if [[ $IPERF == procs ]]; then baseline="S iperf3 processes, -P 1 each"; else baseline="iperf3 -P S"; fi
if ((${#len_args[@]})); then baseline+=" ${len_args[*]}"; else baseline+=" (default -l)"; fi
echo "tcp loopback, $(numfmt --to=iec-i "$bytes")B per run ($bytes bytes), rmig frames $CHUNK," \
     "baseline $baseline, $ROUNDS alternating rounds, receiver throughput in Gbit/s"
echo "host: $(nproc) cpus, $(uname -r), $(iperf3 --version | head -1 | cut -d' ' -f1-2)," \
     "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{ exit !($1 > 0.5) }' /proc/loadavg; then
    echo "note: the machine is not idle; loopback results swing with other load"
fi
echo

summary=()
for streams in ${STREAMS//,/ }; do
    [[ "$streams" =~ ^[1-9][0-9]*$ ]] || die "bad stream count '$streams'"
    iperf_rates=(); rmig_rates=(); iperf_cells=(); rmig_cells=()
    for ((r = 1; r <= ROUNDS; r++)); do
        # Alternate the order so warm-up and drift do not favour one tool.
        if ((r % 2)); then order="iperf3 rmig"; else order="rmig iperf3"; fi
        for tool in $order; do
            if [[ $tool == iperf3 ]]; then
                run_iperf3 "$streams"
                iperf_rates+=("$bps")
                iperf_cells+=("$(printf '%6s (cpu %3.0f%%+%3.0f%%)' "$(gbit "$bps")" "$cpu_s" "$cpu_r")")
            else
                run_rmig "$streams"
                rmig_rates+=("$bps")
                rmig_cells+=("$(printf '%6s (cpu %3.0f%%)     ' "$(gbit "$bps")" "$cpu")")
            fi
        done
    done
    mi=$(median "${iperf_rates[@]}")
    mr=$(median "${rmig_rates[@]}")
    ratio=$(awk -v a="$mr" -v b="$mi" 'BEGIN { printf "%.3f", a / b }')
    verdict=$(awk -v r="$ratio" -v t="$TARGET" 'BEGIN { print (r >= t ? "meets target" : "BELOW target") }')
    echo "streams $streams"
    for ((r = 1; r <= ROUNDS; r++)); do
        printf '  round %d   iperf3 %s   rmig %s\n' "$r" "${iperf_cells[r - 1]}" "${rmig_cells[r - 1]}"
    done
    printf '  median    iperf3 %6s Gbit/s   rmig %6s Gbit/s   rmig/iperf3 %s (target >= %s: %s)\n\n' \
        "$(gbit "$mi")" "$(gbit "$mr")" "$ratio" "$TARGET" "$verdict"
    summary+=("$(printf '%7s  %13s  %11s  %11s  %7s  %s' "$streams" "$(gbit "$mi")" "$(gbit "$mr")" \
        "$ratio" ">= $TARGET" "$verdict")")
done

echo "summary (medians of $ROUNDS rounds, Gbit/s)"
printf '%7s  %13s  %11s  %11s  %7s  %s\n' streams iperf3 rmig rmig/iperf3 target ""
printf '%s\n' "${summary[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit 0
