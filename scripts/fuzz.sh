#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for a bounded
# time on its seed corpus in tests/fuzz/corpus/. Exits non-zero on any crash.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET=10] [BUILD_DIR=build-fuzz]
#   MERGE=1 adds new coverage-increasing inputs to the committed corpus.
#   FUZZ_BUILD_ONLY=1 builds the targets and runs none (scripts/test.sh builds
#   them while the tests run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
build=${2:-$root/build-fuzz}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DRMIG_FUZZ=ON -DRMIG_BUILD_TESTS=OFF -DRMIG_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=(hello frames control qemu_text secure)
cmake --build "$build" --target "${targets[@]/#/fuzz_}" | tail -n 1
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0
failed=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  cp "$root/tests/fuzz/corpus/$t"/* "$work"/ 2>/dev/null || true
  if "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$build/crash-$t-" "$work" >"$build/fuzz_$t.log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$build/fuzz_$t.log")
    echo "fuzz_$t: ${runs:-?} inputs in ${secs} s, no crash"
  else
    echo "fuzz_$t: CRASH (see $build/fuzz_$t.log and $build/crash-$t-*)"
    tail -n 30 "$build/fuzz_$t.log"
    failed=1
  fi
  if [ "${MERGE:-0}" = 1 ]; then
    "$build/tests/fuzz/fuzz_$t" -merge=1 "$root/tests/fuzz/corpus/$t" "$work" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
done
exit $failed
