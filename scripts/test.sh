#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds with
# warnings as errors, runs every test (unit, integration, real-QEMU e2e, RDMA
# in the Soft-RoCE VM), builds the unit tests with AddressSanitizer +
# UndefinedBehaviorSanitizer and runs them again, then fuzzes every decoder
# for a bounded time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Each stage says how long it took, so a slow CI run shows where the time went.
start=$SECONDS
stage_start=$SECONDS
stage() {
  local now=$SECONDS
  [ -z "${stage_name:-}" ] || echo "   ($stage_name: $((now - stage_start)) s)"
  stage_name=$1 stage_start=$now
  [ "$1" = end ] || echo "== $1"
}
stage "dependencies"
"$root/scripts/deps.sh"

stage "build (Release, -Werror)"
"$root/scripts/build.sh" "$root/build" | tail -n 1
stage "tests"
ctest --test-dir "$root/build" --output-on-failure --timeout 600

stage "unit tests under ASan+UBSan"
# Only what `ctest -L unit` runs (the unit_tests target), not the lab or the e2e binaries.
cmake -S "$root" -B "$root/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRMIG_WERROR=ON -DRMIG_SANITIZE=ON \
  -DRMIG_BUILD_BENCH=OFF >/dev/null
cmake --build "$root/build-asan" -j "$(nproc)" --target unit_tests | tail -n 1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-asan" -L unit --output-on-failure --timeout 600

stage "fuzzing the decoders (bounded)"
"$root/scripts/fuzz.sh" 10 "$root/build-fuzz"
stage end
echo "== all stages passed in $((SECONDS - start)) s"
