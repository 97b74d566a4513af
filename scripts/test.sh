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

# The sanitizer build (only what `ctest -L unit` runs: the unit_tests target)
# and the fuzzers' build compile while the tests run, at idle CPU priority:
# they take only what the tests leave idle (QEMU guests and links waiting on
# timers leave much of it); ctest took 1164 s alone and 1169-1244 s with them.
# A clean-clone CI run went from 49 to 35-36 min (docs/testing.md).
side_log="$root/build/side-builds.log"
side_builds() {
  cmake -S "$root" -B "$root/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRMIG_WERROR=ON -DRMIG_SANITIZE=ON \
    -DRMIG_BUILD_BENCH=OFF >/dev/null
  cmake --build "$root/build-asan" -j "$(nproc)" --target unit_tests
  FUZZ_BUILD_ONLY=1 "$root/scripts/fuzz.sh" 0 "$root/build-fuzz"
}
side_pid=""
stop_side() { [ -z "$side_pid" ] || kill -- -"$side_pid" 2>/dev/null || true; }
trap stop_side EXIT
trap 'exit 130' INT
trap 'exit 143' TERM  # so that EXIT runs, and the side builds stop, on a kill too
set -m  # the side builds get a process group of their own, to stop as one
(
  chrt --idle -p 0 "$BASHPID" >/dev/null && renice -n 19 -p "$BASHPID" >/dev/null && ionice -c 3 -p "$BASHPID"
  side_builds
) >"$side_log" 2>&1 &
side_pid=$!
set +m

stage "tests"
echo "   (the sanitizer and fuzzing builds run meanwhile, at idle priority: $side_log)"
ctest --test-dir "$root/build" --output-on-failure --timeout 600

stage "unit tests under ASan+UBSan"
if ! wait "$side_pid"; then
  side_pid=""
  tail -n 40 "$side_log"
  echo "test: the sanitizer or fuzzing build failed (whole log: $side_log)" >&2
  exit 1
fi
side_pid=""
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build-asan" -L unit --output-on-failure --timeout 600

stage "fuzzing the decoders (bounded)"
"$root/scripts/fuzz.sh" 10 "$root/build-fuzz"
stage end
echo "== all stages passed in $((SECONDS - start)) s"
