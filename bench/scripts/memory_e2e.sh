#!/usr/bin/env bash
# Memory mode end to end: a synthetic guest (rmig-synth) migrated over tcp
# loopback at several dirty rates, against the raw link measured in the same run.
#
# usage: bench/scripts/memory_e2e.sh [BUILD_DIR]
#   BUILD_DIR  build tree with lab/synth/rmig-synth and bench/rmig-transport-bench
#              (or $BUILD; default build/). This script builds nothing.
# environment:
#   SIZE        guest memory (default 4G; QUICK=1 makes it 1G)
#   REPEATS     runs per case, for the downtime median (default 3; QUICK=1: 1)
#   QUICK       1: SIZE=1G REPEATS=1 unless set, a smoke run of ~1-2 minutes
#   WORKERS     engine workers for the dirty-rate cases (default 2)
#   PATTERN     writer pattern: uniform (default), hot, sequential
#   DOWNTIME_MS downtime budget given to the engine (default 50, the target)
#   DIRTY_LOG   bitmap (default: writers keep a KVM_GET_DIRTY_LOG-style log, as a
#               KVM VMM would) or uffd (userfaultfd write-protect: every first
#               write to a page in a round faults to a handler thread, which
#               caps a writer at some 10^4-10^5 pages/s here)
#   LINK_BYTES  bytes the link measurement moves (default 2G)
#   RATES       dirty rates as shares of the link (default "0 1/8 1/4 1/2 3/4 1"; also 2)
#   MAX_ROUNDS  the engine's round limit (default 20)
#   WORKER_CODECS  codecs for the 1-vs-2-worker comparison (default "lz4 zstd"; "" skips it)
#   WORKER_SIZE guest size for that comparison (default 2G, at most SIZE)
#   OUT         directory for the JSON, logs and plot (default: a new /tmp/memory_e2e.*)
#   SECURITY    psk: authenticated + AES-256-GCM with a random key; plaintext
#               (default, --insecure-plaintext on loopback): the raw link
#               measurement is plaintext too, so the ratios compare like with like
#
# Steps: (1) raw link: rmig-transport-bench over loopback with WORKERS streams
# (the same tcp channels the engine uses, without the engine), plus iperf3 for
# reference when installed; (2) the guest migrated at dirty rates 0, 1/8, 1/4
# and 1/2, 3/4 and 1x of it (the engine must throttle to converge; REPEATS
# times each); (3) 1 worker against 2 with lz4 and zstd on an idle guest (the codec makes the
# worker stage CPU bound). Every run verifies every destination page against
# the source's hash list; a mismatch fails the script.
#
# Reports per case: total time against SIZE / link bandwidth (target <= 1.2)
# and against the pre-copy floor SIZE / (link - dirty rate),
# median downtime (target <= 50 ms for dirty rates up to 1/4 of the link),
# rounds, bytes, achieved write rate, throttle; then 1 vs 2 workers (target
# >= 1.8 where CPU bound). Writes OUT/summary.json, prints the table and an
# ASCII chart of bytes and dirty rate per round, and OUT/rounds.png when
# gnuplot is installed. It reports, it does not judge: exit 0 unless a tool is
# missing, a run breaks or a page differs.
#
# On a 2-core machine source, destination, writers and the link measurement
# share the cores: read the numbers as that, not as a NIC result.
set -euo pipefail

BUILD=${1:-${BUILD:-build}}
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    SIZE=${SIZE:-1G}
    REPEATS=${REPEATS:-1}
fi
SIZE=${SIZE:-4G}
REPEATS=${REPEATS:-3}
WORKERS=${WORKERS:-2}
PATTERN=${PATTERN:-uniform}
DOWNTIME_MS=${DOWNTIME_MS:-50}
export DIRTY_LOG=${DIRTY_LOG:-bitmap}
LINK_BYTES=${LINK_BYTES:-2G}
WORKER_CODECS=${WORKER_CODECS-lz4 zstd}
WORKER_SIZE=${WORKER_SIZE:-2G}
RATES=${RATES:-0 1/8 1/4 1/2 3/4 1}
MAX_ROUNDS=${MAX_ROUNDS:-20}

SYNTH="$BUILD/lab/synth/rmig-synth"
TBENCH="$BUILD/bench/rmig-transport-bench"
die() { echo "memory_e2e: $*" >&2; exit 2; }
[[ -x "$SYNTH" ]] || die "$SYNTH not found; build it: cmake --build $BUILD --target rmig-synth"
[[ -x "$TBENCH" ]] || die "$TBENCH not found; build it: cmake --build $BUILD --target rmig-transport-bench"
for tool in python3 numfmt timeout; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
size_bytes=$(numfmt --from=iec "$SIZE") || die "bad SIZE '$SIZE'"
wsize_bytes=$(numfmt --from=iec "$WORKER_SIZE") || die "bad WORKER_SIZE '$WORKER_SIZE'"
if (( wsize_bytes > size_bytes )); then WORKER_SIZE=$SIZE; wsize_bytes=$size_bytes; fi
RUN_SIZE=$SIZE
[[ "$REPEATS" =~ ^[1-9][0-9]*$ ]] || die "bad REPEATS '$REPEATS'"

OUT=${OUT:-$(mktemp -d /tmp/memory_e2e.XXXXXX)}
mkdir -p "$OUT"
case ${SECURITY:-plaintext} in
    plaintext) SEC=(--insecure-plaintext) ;;
    psk) rm -f "$OUT/key.psk"; (umask 077; openssl rand -hex 32 > "$OUT/key.psk") || die "openssl rand failed"
         SEC=(--psk-file "$OUT/key.psk") ;;
    *) die "bad SECURITY '$SECURITY': psk or plaintext" ;;
esac
dest_pid=""
cleanup() { [[ -n $dest_pid ]] && kill "$dest_pid" 2>/dev/null || true; }
trap cleanup EXIT

load=$(cut -d' ' -f1 /proc/loadavg)
echo "memory_e2e: SECURITY=${SECURITY:-plaintext} SIZE=$SIZE REPEATS=$REPEATS WORKERS=$WORKERS PATTERN=$PATTERN DOWNTIME_MS=$DOWNTIME_MS DIRTY_LOG=$DIRTY_LOG" \
     "cores=$(nproc) load=$load out=$OUT"
python3 -c "import sys; sys.exit(0 if float('$load') <= 0.5 else 1)" ||
    echo "memory_e2e: note: load average $load > 0.5; other work shares the cores and moves the numbers"

# ---- 1. the raw link ----
echo "== link: rmig-transport-bench, $WORKERS streams, $LINK_BYTES over tcp loopback"
"$TBENCH" --bytes "$LINK_BYTES" --streams "$WORKERS" --json > "$OUT/link.json"
link_bps=$(python3 -c "import json; print(int(json.load(open('$OUT/link.json'))['bits_per_second'] / 8))")
iperf_bps=0
if command -v iperf3 >/dev/null; then
    port=$((20000 + RANDOM % 20000))
    timeout 60 iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    ip=$!
    for _ in $(seq 50); do ss -ltn 2>/dev/null | grep -q ":$port " && break; sleep 0.1; done
    if timeout 60 iperf3 -c 127.0.0.1 -p "$port" -P "$WORKERS" -n "$LINK_BYTES" -l 1M -J > "$OUT/iperf3.json" 2>/dev/null; then
        iperf_bps=$(python3 -c "import json; print(int(json.load(open('$OUT/iperf3.json'))['end']['sum_received']['bits_per_second'] / 8))")
    fi
    wait "$ip" 2>/dev/null || true
fi
echo "link: rmig tcp $(numfmt --to=si "$link_bps")B/s, iperf3 $(numfmt --to=si "$iperf_bps")B/s"

# ---- 2. one migration: run NAME [source args...] ----
run() {
    local name=$1
    shift
    local port="$OUT/$name.port"
    rm -f "$port"
    "$SYNTH" dest --size "$RUN_SIZE" --listen tcp:127.0.0.1:0 --port-file "$port" --timeout 240 --json "${SEC[@]}" \
        > "$OUT/$name.dest.json" 2> "$OUT/$name.dest.log" &
    dest_pid=$!
    for _ in $(seq 600); do [[ -s $port ]] && break; sleep 0.1; done
    [[ -s $port ]] || die "$name: destination never listened ($(tail -n 2 "$OUT/$name.dest.log"))"
    local rc=0
    timeout 300 "$SYNTH" source --size "$RUN_SIZE" --to "$(cat "$port")" --json --max-seconds 150 \
        --dirty-log "$DIRTY_LOG" "${SEC[@]}" "$@" \
        > "$OUT/$name.source.json" 2> "$OUT/$name.source.log" || rc=$?
    local drc=0
    wait "$dest_pid" || drc=$?
    dest_pid=""
    [[ $drc == 3 ]] && die "$name: destination pages differ from the source's: $(cat "$OUT/$name.dest.json")"
    [[ $rc == 0 || $rc == 1 ]] || die "$name: source exited $rc ($(tail -n 3 "$OUT/$name.source.log"))"
    python3 - "$OUT/$name" <<'EOF'
import json, sys
p = sys.argv[1]
s, d = json.load(open(p + ".source.json")), json.load(open(p + ".dest.json"))
if s["ok"]:
    line = (f"{s['rounds']} rounds, {s['seconds']:.2f} s, downtime {s['downtime_ms']:.1f} ms, "
            f"{s['bytes_sent']/2**30:.2f} GiB sent, writes {s['write_rate']/1e6:.0f} MB/s, "
            f"throttle {s['throttle_percent']}%, verified {d['verified']} pages, {d['mismatches']} mismatches")
else:
    line = f"gave up / failed after {s['rounds']} rounds: {s['error']}"
print("  " + p.rsplit("/", 1)[1] + ": " + line)
EOF
}

frac_rate() { python3 -c "print(int($link_bps * $1))"; }
writers_for() {  # a second writer thread above 200k page writes/s (2 cores: no more)
    python3 -c "print(1 if $1 / 4096 <= 200000 else 2)"
}

cases=()
for label in $RATES; do
    case $label in 0) share=0 ;; 1/8) share=0.125 ;; 1/4) share=0.25 ;; 1/2) share=0.5 ;; 3/4) share=0.75 ;;
        1) share=1 ;; 2) share=2 ;; *) die "bad rate '$label' in RATES (0 1/8 1/4 1/2 3/4 1 2)" ;; esac
    rate=$(frac_rate "$share")
    echo "== dirty rate $label of link = $(numfmt --to=si "$rate")B/s, $REPEATS runs, at most $MAX_ROUNDS rounds"
    for r in $(seq "$REPEATS"); do
        name="dirty_${label//\//_}_r$r"
        run "$name" --dirty-rate "$rate" --pattern "$PATTERN" --writers "$(writers_for "$rate")" \
            --workers "$WORKERS" --downtime-ms "$DOWNTIME_MS" --max-rounds "$MAX_ROUNDS"
        cases+=("$label|$rate|$name")
    done
done

# ---- 3. 1 worker vs 2 with a codec (CPU-bound worker stage), idle guest ----
RUN_SIZE=$WORKER_SIZE
for codec in $WORKER_CODECS; do
    echo "== workers: 1 vs 2 with $codec, idle $WORKER_SIZE guest, $REPEATS runs each"
    for r in $(seq "$REPEATS"); do
        run "${codec}_w1_r$r" --codec "$codec" --workers 1 --downtime-ms "$DOWNTIME_MS"
        run "${codec}_w2_r$r" --codec "$codec" --workers 2 --downtime-ms "$DOWNTIME_MS"
    done
done
RUN_SIZE=$SIZE

# ---- 4. summary ----
printf '%s\n' "${cases[@]}" > "$OUT/cases.txt"
WORKER_CODECS="$WORKER_CODECS" WORKER_SIZE="$WORKER_SIZE" \
python3 - "$OUT" "$size_bytes" "$link_bps" "$iperf_bps" "$REPEATS" "$SIZE" "$PATTERN" "$WORKERS" <<'EOF'
import json, os, shutil, statistics, subprocess, sys

out, size, link, iperf, repeats, size_txt, pattern, workers = sys.argv[1:]
size, link, iperf, repeats = int(size), int(link), int(iperf), int(repeats)
ideal = size / link
load = lambda n: (json.load(open(f"{out}/{n}.source.json")), json.load(open(f"{out}/{n}.dest.json")))
med = lambda xs: statistics.median(xs) if xs else float("nan")

groups = {}
for line in open(f"{out}/cases.txt").read().split():
    label, rate, name = line.split("|")
    groups.setdefault(label, (int(rate), []))[1].append(name)

rows, summary = [], {"size": size, "dirty_log": os.environ.get("DIRTY_LOG", "bitmap"),
                      "link_bytes_per_s": link, "iperf3_bytes_per_s": iperf,
                      "ideal_seconds": ideal, "pattern": pattern, "workers": int(workers), "cases": []}
for label, (rate, names) in groups.items():
    runs = [load(n) for n in names]
    ok = [s for s, d in runs if s["ok"]]
    case = {"dirty": label, "dirty_rate": rate, "runs": len(runs), "converged": len(ok),
            "seconds": med([s["seconds"] for s in ok]), "downtime_ms": med([s["downtime_ms"] for s in ok]),
            "downtime_all_ms": [round(s["downtime_ms"], 1) for s in ok],
            "rounds": med([s["rounds"] for s in ok]), "bytes_sent": med([s["bytes_sent"] for s in ok]),
            "write_rate": med([s["write_rate"] for s, _ in runs]),
            "throttle": max([s["throttle_percent"] for s, _ in runs]),
            "pause_ms": med([s["pause_ms"] for s in ok]),
            "switchover_ms": {k: med([s["switchover_ms"][k] for s in ok]) for k in
                              ("pause", "collect", "final_round", "device_state", "placed", "confirm")}
                             if ok and "switchover_ms" in ok[0] else {},
            "errors": [s["error"] for s, _ in runs if not s["ok"]],
            "mismatches": sum(d["mismatches"] for _, d in runs),
            "round_log": runs[0][0]["round_log"]}
    case["ratio"] = case["seconds"] / ideal
    # The pre-copy floor: every byte once while the guest keeps dirtying at its rate.
    case["floor_seconds"] = size / (link - rate) if rate < link else None
    case["floor_ratio"] = case["seconds"] / case["floor_seconds"] if case["floor_seconds"] else None
    summary["cases"].append(case)

summary["workers_compare"] = {"size": os.environ["WORKER_SIZE"], "codecs": {}}
for codec in os.environ["WORKER_CODECS"].split():
    w = {}
    for k in (1, 2):
        runs = [load(f"{codec}_w{k}_r{r}")[0] for r in range(1, repeats + 1)]
        w[k] = {"seconds": med([s["seconds"] for s in runs if s["ok"]]),
                "seconds_all": [round(s["seconds"], 2) for s in runs if s["ok"]],
                "bytes_sent": med([s["bytes_sent"] for s in runs if s["ok"]]),
                "size": runs[0]["size"]}
    summary["workers_compare"]["codecs"][codec] = {"w1": w[1], "w2": w[2], "speedup": w[1]["seconds"] / w[2]["seconds"]}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)

gib = lambda b: b / 2**30
print()
print(f"Guest {size_txt} ({pattern}, {summary['dirty_log']} dirty log), {workers} workers, link (rmig tcp, {workers} streams) "
      f"{link/1e9:.2f} GB/s, iperf3 {iperf/1e9:.2f} GB/s; ideal time size/link = {ideal:.2f} s")
hdr = ("dirty", "rate MB/s", "writes MB/s", "ok", "time s", "time/ideal", "time/floor", "downtime ms (median)",
       "rounds", "GiB sent", "throttle %")
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join("---" for _ in hdr) + "|")
for c in summary["cases"]:
    dt = f"{c['downtime_ms']:.1f} ({', '.join(str(x) for x in c['downtime_all_ms'])})" if c["converged"] else "-"
    print(f"| {c['dirty']} | {c['dirty_rate']/1e6:.0f} | {c['write_rate']/1e6:.0f} | {c['converged']}/{c['runs']} | "
          f"{c['seconds']:.2f} | {c['ratio']:.2f} | "
          f"{'-' if c['floor_ratio'] is None or c['floor_ratio'] != c['floor_ratio'] else format(c['floor_ratio'], '.2f')} | "
          f"{dt} | {c['rounds']:g} | {gib(c['bytes_sent']):.2f} | "
          f"{c['throttle']} |")
print()
for codec, lw in summary["workers_compare"]["codecs"].items():
    print(f"{codec}, idle {os.environ['WORKER_SIZE']} guest: 1 worker {lw['w1']['seconds']:.2f} s "
          f"{lw['w1']['seconds_all']}, 2 workers {lw['w2']['seconds']:.2f} s {lw['w2']['seconds_all']}, "
          f"speedup {lw['speedup']:.2f} (target >= 1.8 where CPU bound); "
          f"{gib(lw['w2']['bytes_sent']):.2f} GiB on the wire")
print("targets (issue 15): every run converges; downtime median <= 50 ms at every rate; time/ideal <= 1.2 up to 1/4")
print("downtime, median of each part (ms): pause / collect / final round / device state / placed / confirm")
for c in summary["cases"]:
    sw = c["switchover_ms"]
    if sw:
        print(f"  dirty {c['dirty']}: " + " / ".join(f"{sw[k]:.1f}" for k in
              ("pause", "collect", "final_round", "device_state", "placed", "confirm")))
for c in summary["cases"]:
    for e in c["errors"]:
        print(f"  dirty {c['dirty']}: {e}")

# ASCII chart: per case and round, MiB sent (#) and the dirty rate measured in that round (.)
print("\nPer round (first run of each case): # = MiB sent in the round, rate = distinct dirty MB/s in it")
for c in summary["cases"]:
    log = c["round_log"]
    if not log:
        continue
    top = max(r["page_bytes"] for r in log) or 1
    print(f" dirty {c['dirty']}:")
    for r in log:
        bar = "#" * max(1, round(40 * r["page_bytes"] / top)) if r["page_bytes"] else ""
        print(f"  r{r['round']:<2} {r['page_bytes']/2**20:9.1f} MiB {bar:<40} dirty {r['dirty_rate']/1e6:7.1f} MB/s"
              f"  ({r['seconds']*1000:.0f} ms, throttle {r['throttle_percent']}%)")

if shutil.which("gnuplot"):
    for c in summary["cases"]:
        with open(f"{out}/rounds_{c['dirty'].replace('/', '_')}.dat", "w") as f:
            for r in c["round_log"]:
                f.write(f"{r['round']} {r['page_bytes']/2**20:.3f} {r['dirty_rate']/1e6:.3f}\n")
    files = [(c["dirty"], f"{out}/rounds_{c['dirty'].replace('/', '_')}.dat") for c in summary["cases"] if c["round_log"]]
    script = [f"set terminal pngcairo size 1000,700 font ',10'", f"set output '{out}/rounds.png'",
              "set multiplot layout 2,1 title 'rmig memory mode: per pre-copy round'",
              "set xlabel 'round'; set ylabel 'MiB sent'; set logscale y; set grid; set key outside right",
              "plot " + ", ".join(f"'{p}' using 1:2 with linespoints title 'dirty {l}'" for l, p in files),
              "unset logscale y; set ylabel 'dirty rate MB/s (distinct pages)'",
              "plot " + ", ".join(f"'{p}' using 1:3 with linespoints title 'dirty {l}'" for l, p in files),
              "unset multiplot"]
    with open(f"{out}/gnuplot.log", "w") as log:
        subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True, stderr=log)
    print(f"\nplot: {out}/rounds.png")
print(f"JSON: {out}/summary.json")
EOF
