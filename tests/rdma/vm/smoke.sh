#!/usr/bin/env bash
# Soft-RoCE smoke test, meant to run inside the VM:
#   tests/rdma/vm/run-in-vm.sh -- tests/rdma/vm/smoke.sh
# Checks: ibv_devices lists rxe0; its port is ACTIVE; an ib_write_bw server and
# client (RoCE v2, GID index 1) on 10.11.12.1 finish and report a bandwidth;
# rping over rdma_cm does 10 verified round trips. Exits nonzero on any failure.
set -uo pipefail

dev=${RMIG_VM_RDMA_DEV:-rxe0}
ip=${RMIG_VM_RDMA_IP:-10.11.12.1}
gid=${RMIG_VM_GID_INDEX:-1}
tmp=$(mktemp -d)
pids=()
# shellcheck disable=SC2154  # p is assigned inside the trap string
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
t0=$(date +%s.%N)
step() { printf '== [%5.2fs] %s\n' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$*"; }
[ "${RMIG_VM:-}" = 1 ] || echo "smoke: note: RMIG_VM is not set; meant for run-in-vm.sh" >&2
for t in ibv_devices ibv_devinfo ib_write_bw rping rdma ss; do
  command -v "$t" >/dev/null || fail "missing $t (apt-get install ibverbs-utils perftest rdmacm-utils rdma-core iproute2)"
done

# wait_for DESC TRIES CMD...: poll every 0.1 s
wait_for() {
  local desc=$1 n=$2; shift 2
  for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done
  fail "timed out waiting for $desc"
}

step "ibv_devices"
ibv_devices | tee "$tmp/devs" || fail "ibv_devices"
grep -qw "$dev" "$tmp/devs" || fail "$dev not listed by ibv_devices"

step "ibv_devinfo -d $dev"
ibv_devinfo -d "$dev" >"$tmp/info" || fail "ibv_devinfo -d $dev"
grep -E 'hca_id|transport|state:|active_mtu|link_layer' "$tmp/info"
grep -q PORT_ACTIVE "$tmp/info" || fail "$dev port is not PORT_ACTIVE"

step "ib_write_bw -d $dev -x $gid -s 65536 -n 2000 (server + client on $ip)"
port=18515
bw_args=(-d "$dev" -x "$gid" -s 65536 -n 2000 -p "$port" -F)
timeout 120 ib_write_bw "${bw_args[@]}" >"$tmp/bw-server" 2>&1 &
srv=$!; pids+=("$srv")
listening() { ss -Hltn "sport = :$port" | grep -q .; }
wait_for "ib_write_bw server to listen on :$port" 300 listening
timeout 120 ib_write_bw "${bw_args[@]}" "$ip" >"$tmp/bw-client" 2>&1
crc=$?
wait "$srv"; src=$?
if [ $crc != 0 ] || [ $src != 0 ]; then
  echo "-- server:"; cat "$tmp/bw-server"; echo "-- client:"; cat "$tmp/bw-client"
  fail "ib_write_bw (client exit $crc, server exit $src)"
fi
bwline=$(awk '$1 == 65536 && $2 == 2000' "$tmp/bw-client")
[ -n "$bwline" ] || { cat "$tmp/bw-client"; fail "no bandwidth line in ib_write_bw output"; }
grep -E '#bytes' "$tmp/bw-client"
echo "$bwline"
read -r _ _ peak avg _ <<<"$bwline"
echo "smoke: ib_write_bw 64 KiB x 2000: average $avg MB/s ($(awk -v a="$avg" 'BEGIN { printf "%.2f", a * 8 / 1000 }') Gb/s), peak $peak MB/s"

step "rping over rdma_cm (10 round trips)"
timeout 60 rping -s -a "$ip" -C 10 -v >"$tmp/rping-server" 2>&1 &
srv=$!; pids+=("$srv")
rping_listening() { rdma res show cm_id 2>/dev/null | grep -q 'state LISTEN'; }
wait_for "rping server to listen" 300 rping_listening
timeout 60 rping -c -a "$ip" -C 10 -v >"$tmp/rping-client" 2>&1
crc=$?
wait "$srv"; src=$?
n=$(grep -c 'ping data: rdma-ping-' "$tmp/rping-client")
grep -m 1 'ping data' "$tmp/rping-client"; echo "..."
if [ $crc != 0 ] || [ $src != 0 ] || [ "$n" != 10 ]; then
  echo "-- server:"; cat "$tmp/rping-server"; echo "-- client:"; cat "$tmp/rping-client"
  fail "rping (client exit $crc, server exit $src, $n/10 pings)"
fi
echo "smoke: rping 10/10 ok"

step "done"
echo "smoke: PASS"
