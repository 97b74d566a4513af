#!/usr/bin/env bash
# One real migration of the lab's test guest through rmig, pictured: two TCG
# QEMUs on this host, `rmig receive` and `rmig migrate` over TCP on loopback
# (a random pre-shared key, AES-256-GCM), the destination resumed, then
# `rmig report --plot`. Made docs/img/migration-plot.svg (docs/usage.md).
# Usage: scripts/example-plot.sh [BUILD_DIR] [OUT.svg|OUT.png] [RAM_MIB] [MULTIFD] [REPORT.json]
# (REPORT.json: keep rmig migrate's report there too)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
out=${2:-migration-plot.svg}
ram=${3:-512}
multifd=${4:-2}
keep_report=${5:-}
rmig=$build/cli/rmig
image=$build/guest/rmig-test-guest.img
for f in "$rmig" "$image"; do
  [ -e "$f" ] || { echo "example-plot: $f is missing: build rmig first (scripts/build.sh $build)" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/rmig-example-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

qemu() {  # NAME [extra args]
  local name=$1; shift
  qemu-system-x86_64 -accel tcg -nodefaults -display none -m "${ram}M" -machine pc \
    -drive "file=$image,format=raw,if=ide,file.locking=off" -serial "file:$dir/$name.serial" \
    -qmp "unix:$dir/$name.qmp,server=on,wait=off" -name "$name" "$@" &
  pids+=($!)
}
qemu source
qemu destination -S -incoming defer
for s in source destination; do
  for _ in $(seq 50); do [ -S "$dir/$s.qmp" ] && break; sleep 0.1; done
done
sleep 1  # the guest's first passes: its hot range is written before anything moves

openssl rand -hex 32 > "$dir/key.psk"
"$rmig" receive --qmp "$dir/destination.qmp" --listen tcp:127.0.0.1:0 --address-file "$dir/address" \
  --psk-file "$dir/key.psk" --timeout 120 --quiet &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/address" ] && break; sleep 0.1; done
"$rmig" migrate --qmp "$dir/source.qmp" --to "$(cat "$dir/address")" --multifd "$multifd" \
  --psk-file "$dir/key.psk" --timeout 120 --progress none --json "$dir/report.json"
[ -z "$keep_report" ] || cp "$dir/report.json" "$keep_report"
"$rmig" report "$dir/report.json" --plot "$out"
