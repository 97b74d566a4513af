#!/usr/bin/env bash
# Memory-mode post-copy against pre-copy with auto-converge: an rmig-synth
# guest that dirties memory faster than the link carries (2x by default),
# migrated both ways over the same link, with the raw link measured in the
# same run (docs/postcopy.md, "Memory mode: measured").
#
# usage: bench/scripts/postcopy_synth.sh [BUILD_DIR]
#   BUILD_DIR  build tree with lab/synth/rmig-synth and bench/rmig-transport-bench
#              (or $BUILD; default build/). This script builds nothing.
# environment:
#   SIZE        guest memory (default 4G)
#   LINK        the link: a tc tbf rate on the loopback of a network namespace
#               made here ("2gbit", the default; needs root), or "none": the
#               host's loopback as it is (no root; rmig-synth's writers then
#               cannot reach 2x the link on a small machine, the report says
#               what they reached)
#   URI         where the destination listens (default tcp:127.0.0.1:0;
#               rdma:ADDR:0 inside the Soft-RoCE VM, with LINK=none)
#   DIRTY       dirty rate as a multiple of the link (default 2)
#   PATTERN     writer pattern (default uniform)
#   DIRTY_LOG   bitmap (default: the writers keep a KVM_GET_DIRTY_LOG-style
#               log, as a KVM VMM would) or uffd (userfaultfd write-protect,
#               which caps the writers far below 2x a fast link)
#   CASES       which runs, in order (default "precopy postcopy after1"):
#               precopy  pre-copy with auto-converge (the engine throttles),
#               postcopy the switch by itself where the policy would throttle,
#               after1   post-copy forced after the first full round
#   REPEATS     runs per case (default 1)
#   READERS     guest threads reading pages on the destination during
#               post-copy (default 2), READ_RATE pages/s each (default 20000p)
#   DOWNTIME_MS the downtime budget (default 50)
#   WORKERS     engine workers (default 2)
#   MAX_SECONDS the engine's time limit per run (default 240)
#   SECURITY    plaintext (default on loopback: --insecure-plaintext), auth
#               (default elsewhere: a random pre-shared key, data channels
#               not encrypted, so rdma keeps its one-sided reads) or encrypt
#   OUT         directory for JSON and logs (default: a new /tmp/postcopy_synth.*)
#
# Reports per run: total time, blackout, rounds, throttle, GiB sent; for
# post-copy the pending pages, the phase, the push rate against the link,
# faults, pages fetched on demand and the fault latency p50/p99/max. Every
# run verifies every destination page (and the destination's readers check
# every page they touch); a mismatch fails the script. Writes OUT/summary.json.
# Exit: 0 done, 1 a run broke or a page differed, 2 usage or a missing tool.
set -euo pipefail

BUILD=${1:-${BUILD:-build}}
SIZE=${SIZE:-4G}
LINK=${LINK:-2gbit}
URI=${URI:-tcp:127.0.0.1:0}
DIRTY=${DIRTY:-2}
PATTERN=${PATTERN:-uniform}
DIRTY_LOG=${DIRTY_LOG:-bitmap}
CASES=${CASES:-precopy postcopy after1}
REPEATS=${REPEATS:-1}
READERS=${READERS:-2}
READ_RATE=${READ_RATE:-20000p}
DOWNTIME_MS=${DOWNTIME_MS:-50}
WORKERS=${WORKERS:-2}
MAX_SECONDS=${MAX_SECONDS:-240}

SYNTH="$BUILD/lab/synth/rmig-synth"
TBENCH="$BUILD/bench/rmig-transport-bench"
die() { echo "postcopy_synth: $*" >&2; exit 2; }
[[ -x "$SYNTH" ]] || die "$SYNTH not found; build it: cmake --build $BUILD --target rmig-synth"
[[ -x "$TBENCH" ]] || die "$TBENCH not found; build it: cmake --build $BUILD --target rmig-transport-bench"
for tool in python3 numfmt timeout; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[[ "$REPEATS" =~ ^[1-9][0-9]*$ ]] || die "bad REPEATS '$REPEATS'"
numfmt --from=iec "$SIZE" >/dev/null || die "bad SIZE '$SIZE'"
for c in $CASES; do [[ $c == precopy || $c == postcopy || $c == after1 ]] || die "bad case '$c' in CASES"; done

OUT=${OUT:-$(mktemp -d /tmp/postcopy_synth.XXXXXX)}
mkdir -p "$OUT"
host=${URI#*:}
host=${host%:*}
[[ $host == 127.0.0.1 || $host == localhost ]] && default_sec=plaintext || default_sec=auth
case ${SECURITY:-$default_sec} in
    plaintext) SEC=(--insecure-plaintext) ;;
    auth | encrypt)
        command -v openssl >/dev/null || die "openssl is needed for a pre-shared key"
        rm -f "$OUT/key.psk"
        (umask 077; openssl rand -hex 32 > "$OUT/key.psk")
        SEC=(--psk-file "$OUT/key.psk")
        [[ ${SECURITY:-$default_sec} == auth ]] && SEC+=(--no-encrypt) ;;
    *) die "bad SECURITY '$SECURITY': plaintext, auth or encrypt" ;;
esac
ns=""
IN=()
dest_pid=""
cleanup() {
    [[ -n $dest_pid ]] && kill "$dest_pid" 2>/dev/null || true
    [[ -n $ns ]] && ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
if [[ $LINK != none ]]; then
    [[ $(id -u) == 0 ]] || die "LINK=$LINK shapes a namespace's loopback: run as root, or LINK=none"
    command -v ip >/dev/null && command -v tc >/dev/null || die "ip and tc (iproute2) are needed for LINK=$LINK"
    ns="rmig-pcs-$$"
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" tc qdisc replace dev lo root tbf rate "$LINK" burst 512k latency 20ms ||
        die "tc tbf is not available in this kernel"
    IN=(ip netns exec "$ns")
fi

echo "postcopy_synth: SIZE=$SIZE LINK=$LINK URI=$URI SECURITY=${SECURITY:-$default_sec} DIRTY=${DIRTY}x PATTERN=$PATTERN DIRTY_LOG=$DIRTY_LOG CASES='$CASES'" \
     "REPEATS=$REPEATS READERS=$READERS@$READ_RATE cores=$(nproc) load=$(cut -d' ' -f1 /proc/loadavg) out=$OUT"

# ---- 1. the raw link, where the runs go ----
listen=${URI%:*}:0
echo "== link: rmig-transport-bench, $WORKERS streams over $listen"
"${IN[@]}" "$TBENCH" --bytes 1G --streams "$WORKERS" --listen "$listen" --json > "$OUT/link.json" ||
    die "the link measurement failed"
link_bps=$(python3 -c "import json; print(int(json.load(open('$OUT/link.json'))['bits_per_second'] / 8))")
dirty_bps=$(python3 -c "print(int($link_bps * $DIRTY))")
echo "link: $(numfmt --to=si "$link_bps")B/s raw; the writers are asked for $(numfmt --to=si "$dirty_bps")B/s"

# ---- 2. one migration: run NAME [source args...] ----
failed=0
run() {
    local name=$1
    shift
    local port="$OUT/$name.port"
    rm -f "$port"
    "${IN[@]}" "$SYNTH" dest --size "$SIZE" --listen "$URI" --port-file "$port" --timeout $((MAX_SECONDS + 120)) \
        --step-timeout 120 --guest-readers "$READERS" --guest-read-rate "$READ_RATE" "${SEC[@]}" --json \
        > "$OUT/$name.dest.json" 2> "$OUT/$name.dest.log" &
    dest_pid=$!
    for _ in $(seq 600); do [[ -s $port ]] && break; sleep 0.1; done
    [[ -s $port ]] || die "$name: destination never listened ($(tail -n 2 "$OUT/$name.dest.log"))"
    local rc=0
    timeout $((MAX_SECONDS + 60)) "${IN[@]}" "$SYNTH" source --size "$SIZE" --to "$(cat "$port")" --json \
        --max-seconds "$MAX_SECONDS" "${SEC[@]}" --dirty-rate "$dirty_bps" --pattern "$PATTERN" \
        --dirty-log "$DIRTY_LOG" --writers 2 --workers "$WORKERS" --downtime-ms "$DOWNTIME_MS" --max-rounds 1000 "$@" \
        > "$OUT/$name.source.json" 2> "$OUT/$name.source.log" || rc=$?
    local drc=0
    wait "$dest_pid" || drc=$?
    dest_pid=""
    if [[ $drc == 3 ]]; then
        echo "postcopy_synth: $name: destination pages differ from the source's" >&2
        failed=1
    fi
    [[ $rc == 0 || $rc == 1 ]] || { echo "postcopy_synth: $name: source exited $rc" >&2; failed=1; }
    python3 - "$OUT/$name" "$link_bps" <<'EOF'
import json, sys
p, link = sys.argv[1], int(sys.argv[2])
try:
    s, d = json.load(open(p + ".source.json")), json.load(open(p + ".dest.json"))
except (OSError, ValueError) as e:
    print(f"  {p.rsplit('/', 1)[1]}: no report ({e})"); sys.exit(0)
name = p.rsplit("/", 1)[1]
if not s.get("ok"):
    print(f"  {name}: failed after {s.get('rounds')} rounds: {s.get('error')}"); sys.exit(0)
line = (f"{s['seconds']:.1f} s, blackout {s['downtime_ms']:.1f} ms, {s['rounds']} rounds, "
        f"throttle {s.get('throttle_percent', 0)}%, {s['bytes_sent']/2**30:.2f} GiB, "
        f"writes {s.get('write_rate', 0)/1e6:.0f} MB/s")
sp, dp = s.get("postcopy", {}), d.get("postcopy", {})
if sp.get("switched"):
    # Every pending page arrives in the phase: pushed, pulled (rdma) or fetched.
    rate = dp["pending_pages"] * 4096 / dp["phase_s"] if dp.get("phase_s") else 0
    line += (f"; post-copy: {sp['pending_pages']} pages pending, phase {sp['phase_s']:.1f} s, pages arrive at "
             f"{rate/1e6:.0f} MB/s = {rate/link:.2f} of the link, {dp.get('faults')} faults "
             f"({dp.get('fetched_pages')} fetched), fault p50 {dp.get('fault_p50_us', 0):.0f} us "
             f"p99 {dp.get('fault_p99_us', 0):.0f} us max {dp.get('fault_max_us', 0)/1000:.1f} ms, "
             f"guest read {dp.get('pages_checked')} pages; dropped {dp.get('dropped_early_pages')} pages in "
             f"{dp.get('drop_early_ms', 0):.0f} ms before the pause, {dp.get('dropped_in_blackout_pages')} in "
             f"{dp.get('drop_in_blackout_ms', 0):.0f} ms of the blackout")
print(f"  {name}: {line}; verified {d.get('verified')} pages, {d.get('mismatches')} mismatches")
EOF
}

for r in $(seq "$REPEATS"); do
    for c in $CASES; do
        echo "== $c, run $r"
        case $c in
            precopy) run "precopy_r$r" ;;
            postcopy) run "postcopy_r$r" --postcopy ;;
            after1) run "after1_r$r" --postcopy-after 1 ;;
        esac
    done
done

# ---- 3. summary ----
python3 - "$OUT" "$link_bps" "$SIZE" "$LINK" "$DIRTY" "$CASES" "$REPEATS" <<'EOF'
import json, statistics, sys
out, link, size, shaped, dirty, cases, repeats = sys.argv[1:]
link, repeats = int(link), int(repeats)
summary = {"size": size, "link": shaped, "link_bytes_per_s": link, "dirty_multiple": float(dirty), "cases": {}}
print(f"\n{'case':10} {'ok':>4} {'total s':>8} {'blackout ms':>12} {'fetch/link':>10} {'fault p50 us':>13} {'p99 us':>8}")
for c in cases.split():
    runs = []
    for r in range(1, repeats + 1):
        try:
            runs.append((json.load(open(f"{out}/{c}_r{r}.source.json")), json.load(open(f"{out}/{c}_r{r}.dest.json"))))
        except (OSError, ValueError):
            pass
    ok = [(s, d) for s, d in runs if s.get("ok") and d.get("ok")]
    med = lambda xs: statistics.median(xs) if xs else None
    push = [d["postcopy"]["pending_pages"] * 4096 / d["postcopy"]["phase_s"] / link for s, d in ok
            if d.get("postcopy", {}).get("switched") and d["postcopy"].get("phase_s")]
    row = {"runs": len(runs), "ok": len(ok), "seconds": med([s["seconds"] for s, d in ok]),
           "blackout_ms": med([s["downtime_ms"] for s, d in ok]), "push_over_link": med(push),
           "fault_p50_us": med([d["postcopy"]["fault_p50_us"] for s, d in ok if d.get("postcopy", {}).get("faults")]),
           "fault_p99_us": med([d["postcopy"]["fault_p99_us"] for s, d in ok if d.get("postcopy", {}).get("faults")])}
    summary["cases"][c] = row
    f = lambda v, fmt: format(v, fmt) if v is not None else "-"
    print(f"{c:10} {len(ok):>2}/{len(runs)} {f(row['seconds'], '8.1f')} {f(row['blackout_ms'], '12.1f')} "
          f"{f(row['push_over_link'], '10.2f')} {f(row['fault_p50_us'], '13.0f')} {f(row['fault_p99_us'], '8.0f')}")
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(f"\nreports: {out}")
EOF
exit $failed
