#!/usr/bin/env bash
# Listeners under a flood (docs/security.md): how long a legitimate source
# takes to get into an rmig listener while strangers hold half-open
# connections against it, against the same listener idle, measured in the
# same run; and a real memory-mode migration through the flooded listener.
#
# usage: bench/scripts/listener_flood.sh [BUILD_DIR]
#   BUILD_DIR  build tree with lab/synth/rmig-synth and lab/flood/rmig-flood
#              (or $BUILD; default build/). This script builds nothing.
# environment:
#   RUNS         runs (default 5)
#   CONNECTIONS  strangers held at once (default 1000)
#   KIND         partial-hello (default: 1 byte of the hello, then nothing),
#                silent, stalled-auth, wrong-key (rmig-flood --help)
#   FROM         the strangers' address (default: the source's own, 127.0.0.1;
#                127.0.0.2 plays another host)
#   SIZE         the migrated guest (default 256M)
#   OUT          directory for the JSON and logs (default: a new /tmp/listener_flood.*)
#
# Per run: (1) idle: a fresh listener (rmig-synth dest, pre-shared key), a
# probe connects and authenticates a control channel: connect_ms; (2) the
# same with CONNECTIONS strangers held: connect_ms; (3) a migration of SIZE
# with a writing guest through a flooded listener, every page verified.
# Target (issue 16): the flooded connect within 1 s of the idle one, and the
# migration verified, in every run. Exit 1 if a run misses it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-${BUILD:-$root/build}}" && pwd)
synth=$build/lab/synth/rmig-synth flood=$build/lab/flood/rmig-flood
for b in "$synth" "$flood"; do
  [ -x "$b" ] || { echo "listener_flood.sh: $b missing: build first (scripts/build.sh)" >&2; exit 2; }
done
runs=${RUNS:-5} n=${CONNECTIONS:-1000} kind=${KIND:-partial-hello} from=${FROM:-} size=${SIZE:-256M}
out=${OUT:-$(mktemp -d /tmp/listener_flood.XXXXXX)}
mkdir -p "$out"
key=$out/key.psk
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$key"
echo >> "$key"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Starts a destination; sets $dest_pid and $uri.
start_dest() {
  rm -f "$out/port"
  timeout 300 "$synth" dest --size "$size" --listen tcp:127.0.0.1:0 --port-file "$out/port" \
    --psk-file "$key" --timeout 240 --quiet --json > "$out/dest.json" 2> "$out/dest.log" &
  dest_pid=$!
  pids+=("$dest_pid")
  for _ in $(seq 300); do [ -s "$out/port" ] && break; sleep 0.02; done
  uri=$(cat "$out/port")
}
stop_dest() { kill "$dest_pid" 2>/dev/null || true; wait "$dest_pid" 2>/dev/null || true; }
json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$@"; }

printf '%-4s %12s %12s %10s %12s %10s %s\n' run idle_ms flooded_ms delta_ms migrate_s verified held
fails=0
rows=()
for r in $(seq "$runs"); do
  start_dest
  "$flood" --to "$uri" --connections 0 --probe --psk-file "$key" --seconds 0 --json > "$out/idle.$r.json" 2>/dev/null || true
  stop_dest
  idle=$(json_get "$out/idle.$r.json" "['probe']['connect_ms']")

  start_dest
  "$flood" --to "$uri" --kind "$kind" ${from:+--from "$from"} --connections "$n" --probe --psk-file "$key" \
    --seconds 0 --json > "$out/flooded.$r.json" 2> "$out/flooded.$r.log" || true
  stop_dest
  flooded=$(json_get "$out/flooded.$r.json" "['probe']['connect_ms']")
  ok_probe=$(json_get "$out/flooded.$r.json" "['probe']['ok']")

  start_dest
  rm -f "$out/ready"
  timeout 300 "$flood" --to "$uri" --kind "$kind" ${from:+--from "$from"} --connections "$n" --seconds 200 \
    --ready-file "$out/ready" --json > "$out/flood.$r.json" 2> "$out/flood.$r.log" &
  flood_pid=$!
  pids+=("$flood_pid")
  for _ in $(seq 600); do [ -s "$out/ready" ] && break; sleep 0.05; done
  t0=$(date +%s.%N)
  set +e
  timeout 200 "$synth" source --size "$size" --to "$uri" --psk-file "$key" --dirty-rate 40M --json --quiet \
    > "$out/source.$r.json" 2> "$out/source.$r.log"
  src=$?
  [ "$src" = 0 ] || kill "$dest_pid" 2>/dev/null  # it would wait for its --timeout
  wait "$dest_pid"
  dst=$?
  set -e
  t1=$(date +%s.%N)
  kill -TERM "$flood_pid" 2>/dev/null || true
  wait "$flood_pid" 2>/dev/null || true
  held=$(json_get "$out/flood.$r.json" "['holding_at_end']" 2>/dev/null || echo "?")
  verified=no
  [ "$src" = 0 ] && [ "$dst" = 0 ] && verified=yes
  secs=$(python3 -c "print(f'{$t1-$t0:.2f}')")
  delta=$(python3 -c "print(f'{$flooded-$idle:.1f}')")
  printf '%-4s %12.1f %12.1f %10s %12s %10s %s\n' "$r" "$idle" "$flooded" "$delta" "$secs" "$verified" "$held"
  within=$(python3 -c "print('yes' if $flooded - $idle <= 1000 and '$ok_probe' == 'True' else 'no')")
  [ "$within" = yes ] && [ "$verified" = yes ] || fails=$((fails + 1))
  rows+=("{\"run\":$r,\"idle_connect_ms\":$idle,\"flooded_connect_ms\":$flooded,\"migration_s\":$secs,\"verified\":\"$verified\",\"strangers_held_at_end\":\"$held\"}")
done
(IFS=,; echo "{\"kind\":\"$kind\",\"connections\":$n,\"from\":\"${from:-127.0.0.1}\",\"runs\":[${rows[*]}],\"failed_runs\":$fails}") > "$out/summary.json"
echo "$((runs - fails)) of $runs runs: connect within 1 s of idle and migration verified ($kind x $n${from:+ from $from}); $out/summary.json"
[ "$fails" = 0 ]
