#!/usr/bin/env bash
# Fault-injection soak: randomized seeded cases, bounded in time; prints the
# tally (fault kind x point where it fired: passed/failed) and writes a JSON
# file. Exits non-zero if any case failed. Failed cases keep their directory
# (logs, reports). docs/fault-injection.md says what each case checks.
#
#   --mode channel (default, tcp only): real QEMU pairs through `rmig migrate`
#       -> fault-injecting TCP proxy -> `rmig receive` (rmig-lab faults).
#   --mode memory: rmig-synth source and dest as two processes over
#       --transport tcp | dpdk (memif, no hugepages) | rdma (Soft-RoCE, inside
#       the VM of scripts/rdma-vm.sh); kill -9 / long stop / short stop of either
#       side, dpdk frame loss (rmig-lab faults --mode memory).
#
# Usage: scripts/soak.sh [--mode channel|memory] [--transport tcp|rdma|dpdk]
#                        [--cases N=100] [--seed S=$(date +%s)] [--max-minutes M=30]
#                        [--build DIR=build] [--json FILE] [--size MIB] [--jobs N=1 (memory mode)]
# Reproduce one case: the same command with `rmig-lab faults ... --only K` (printed below).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cases=100 seed=$(date +%s) minutes=30 build="$root/build" json="" mode=channel transport=tcp size="" jobs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) cases=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --max-minutes) minutes=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$mode/$transport" in
  channel/tcp|memory/tcp|memory/dpdk|memory/rdma) ;;
  channel/*) echo "soak.sh: channel mode runs over tcp only (a TCP proxy injects its faults); use --mode memory for $transport" >&2; exit 2 ;;
  *) echo "soak.sh: --mode channel|memory, --transport tcp|rdma|dpdk" >&2; exit 2 ;;
esac
build=$(cd "$build" 2>/dev/null && pwd || echo "$build")
if [ ! -x "$build/lab/rmig-lab" ] || [ ! -x "$build/cli/rmig" ] || [ ! -x "$build/lab/synth/rmig-synth" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DRMIG_WERROR=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$build" rmig rmig-lab rmig-synth | tail -n 1
fi
json=${json:-$build/soak-$mode-$transport-$seed.json}
lab="$build/lab/rmig-lab"
# The harness stops starting cases at the budget; each running case has its own
# hard deadline, and the outer timeout is the last resort.
outer=$(( minutes * 60 + 300 ))

if [ "$mode" = channel ]; then
  echo "soak: channel mode over tcp, $cases cases, seed $seed, at most $minutes min (reproduce one: $lab faults --cases $cases --seed $seed --only K)"
  RMIG_BINARY="$build/cli/rmig" timeout --kill-after=30 "$outer" \
    "$lab" faults --cases "$cases" --seed "$seed" --max-minutes "$minutes" --json "$json"
  exit
fi

args=(faults --mode memory --transport "$transport" --cases "$cases" --seed "$seed"
      --max-minutes "$minutes" --json "$json" --jobs "$jobs")
echo "soak: memory mode over $transport, $cases cases, seed $seed, at most $minutes min (reproduce one: scripts/soak.sh --mode memory --transport $transport --cases $cases --seed $seed, or ${args[*]} --only K)"
case "$transport" in
  tcp|dpdk)
    [ -z "$size" ] || args+=(--size "$size")
    timeout --kill-after=30 "$outer" "$lab" "${args[@]}" ;;
  rdma)
    # Inside the Soft-RoCE VM (TCG; the harness takes a smaller guest, a wider
    # downtime budget and a longer step timeout there). Case directories live on the VM's tmpfs; failed ones are copied into the
    # build dir (shared with the host) so they outlive the VM.
    [ -z "$size" ] || args+=(--size "$size")
    mkdir -p "$build/soak-kept"
    RMIG_SOAK_KEEP_TO="$build/soak-kept" "$root/scripts/rdma-vm.sh" --timeout "$outer" --mem 2G --workdir "$build" \
      -- "$lab" "${args[@]}" ;;
esac
