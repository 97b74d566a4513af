#!/usr/bin/env bash
# Fault-injection soak: randomized cases on real QEMU pairs through rmig and a
# fault-injecting proxy (rmig-lab faults), bounded in time; prints the tally
# (fault kind x point where it fired: passed/failed). Exits non-zero if any
# case failed. Failed cases keep their lab directory (logs, reports).
# Usage: scripts/soak.sh [--cases N=100] [--seed S=$(date +%s)] [--max-minutes M=30]
#                        [--build DIR=build] [--json FILE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cases=100 seed=$(date +%s) minutes=30 build="$root/build" json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) cases=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --max-minutes) minutes=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ ! -x "$build/lab/rmig-lab" ] || [ ! -x "$build/cli/rmig" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DRMIG_WERROR=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$build" rmig rmig-lab | tail -n 1
fi
json=${json:-$build/soak-$seed.json}
echo "soak: $cases cases, seed $seed, at most $minutes min (reproduce one: rmig-lab faults --cases $cases --seed $seed --only K)"
# The harness stops starting cases at the budget; each running case has its own
# hard deadline, and this outer timeout is the last resort.
RMIG_BINARY="$build/cli/rmig" timeout --kill-after=30 $(( minutes * 60 + 300 )) \
  "$build/lab/rmig-lab" faults --cases "$cases" --seed "$seed" --max-minutes "$minutes" --json "$json"
