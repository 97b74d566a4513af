#!/usr/bin/env bash
# Runs one command as root inside a throwaway QEMU (TCG) VM that has Soft-RoCE
# (rxe0 on a dummy netdev, 10.11.12.1/24), and returns the command's exit code.
# The VM boots the Debian 6.1 kernel package (it has rdma_rxe; the host kernel
# need not), with the host's / shared read-only over 9p under a tmpfs overlay,
# and the work dir (default: the current directory) shared read-write at the
# same path. See tests/rdma/vm/README.md.
#
# Exit codes: the command's own; 124 on timeout; 125 if the VM could not be
# set up (missing packages, boot failure, rxe0 not coming up) - the console
# log is printed to stderr then.
set -uo pipefail

usage() {
  cat <<'EOF'
usage: run-in-vm.sh [--timeout S] [--smp N] [--mem M] [--workdir DIR] [--keep] [--verbose] -- COMMAND [ARGS...]
  --timeout S    kill the VM after S seconds, boot included (default 600; exit 124)
  --smp N        guest CPUs (default 2)
  --mem M        guest memory, QEMU -m syntax (default 1G)
  --workdir DIR  host dir shared read-write at the same path (default: current dir);
                 the command still starts in the current dir
  --keep         keep the run dir (console log, exit-code files) and print its path
  --verbose      print boot/setup/payload timings and the console log path to stderr
COMMAND runs as root in the current dir with PATH, HOME, RMIG_* and GTEST_* from the host, plus
RMIG_VM=1 RMIG_VM_RDMA_DEV=rxe0 RMIG_VM_RDMA_IP=10.11.12.1 RMIG_VM_GID_INDEX=1.
Its stdout/stderr stream to this script's stdout/stderr.
Exit: COMMAND's code; 124 timeout; 125 VM/Soft-RoCE setup failed (console log printed).
EOF
}

die_setup() { echo "run-in-vm: $*" >&2; exit 125; }

timeout_s=${RMIG_VM_TIMEOUT:-600}
smp=2
mem=1G
workdir=$PWD
keep=0
verbose=0
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --timeout=*) timeout_s=${1#*=}; shift ;;
    --smp) smp=${2:?}; shift 2 ;;
    --smp=*) smp=${1#*=}; shift ;;
    --mem) mem=${2:?}; shift 2 ;;
    --mem=*) mem=${1#*=}; shift ;;
    --workdir) workdir=${2:?}; shift 2 ;;
    --workdir=*) workdir=${1#*=}; shift ;;
    --keep) keep=1; shift ;;
    -v|--verbose) verbose=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "run-in-vm: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { usage >&2; exit 2; }
[[ $timeout_s =~ ^[0-9]+$ && $timeout_s -gt 0 ]] || { echo "run-in-vm: bad --timeout '$timeout_s'" >&2; exit 2; }
[[ $smp =~ ^[0-9]+$ && $smp -gt 0 ]] || { echo "run-in-vm: bad --smp '$smp'" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
workdir=$(cd "$workdir" 2>/dev/null && pwd -P) || die_setup "no such work dir"
[ "$workdir" != / ] || die_setup "the work dir is shared read-write; / is not allowed (use --workdir)"

# --- prerequisites ---------------------------------------------------------
pkgs_hint="apt-get install qemu-system-x86 linux-image-amd64 busybox-static cpio xz-utils rdma-core ibverbs-utils rdmacm-utils perftest iproute2 kmod"
for t in qemu-system-x86_64 cpio xz timeout; do
  command -v "$t" >/dev/null || die_setup "missing '$t' (try: $pkgs_hint)"
done
busybox=/bin/busybox
# grep without -q reads the whole list: with pipefail, grep -q quitting early
# made busybox die of SIGPIPE now and then, and the check fail (seen in CI).
[ -x "$busybox" ] && "$busybox" --list 2>/dev/null | grep -x switch_root >/dev/null \
  || die_setup "missing static /bin/busybox (try: apt-get install busybox-static)"
file -L "$busybox" 2>/dev/null | grep -q 'dynamically linked' \
  && die_setup "/bin/busybox is dynamically linked; install busybox-static"

# The guest kernel: RMIG_VM_KERNEL=/boot/vmlinuz-X, else the newest /boot/vmlinuz-*
# whose modules include rdma_rxe (on Debian 12: the 6.1 linux-image-amd64).
pick_kernel() {
  local k v
  for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -rV); do
    v=${k#/boot/vmlinuz-}
    find "/lib/modules/$v/kernel/drivers/infiniband/sw/rxe" -name 'rdma_rxe.ko*' 2>/dev/null | grep . >/dev/null \
      && { echo "$k"; return 0; }
  done
  return 1
}
vmlinuz=${RMIG_VM_KERNEL:-$(pick_kernel)} \
  || die_setup "no /boot/vmlinuz-* with rdma_rxe modules (try: apt-get install linux-image-amd64)"
[ -r "$vmlinuz" ] || die_setup "cannot read $vmlinuz"
kver=${vmlinuz##*/vmlinuz-}
[ -d "/lib/modules/$kver" ] || die_setup "no /lib/modules/$kver for $vmlinuz"

# --- cached guest kernel (uncompressed ELF, boots via PVH) and initramfs ---
cache=${RMIG_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/rmig-vm}/$kver
mkdir -p "$cache" || die_setup "cannot create cache dir $cache"
stamp=$(stat -L -c '%s %Y' "$vmlinuz")

# Runs in the initramfs as PID 1 (busybox sh): loads virtio/9p/overlay, mounts
# the host root (ro) under a tmpfs overlay (so /tmp shows the host's files, and
# writes stay in the VM), a fresh tmpfs on /run, the control share at
# /run/rmig-vm and the work share at its host path, then switch_root's into
# /run/rmig-vm/guest-init.sh (a copy of guest-init.sh).
read -r -d '' init_script <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
fail() { echo "rmig-vm-init: FAILED: $*"; echo RMIG_VM_BOOT_FAILED; poweroff -f; sleep 10; }
while read -r m; do insmod "/$m" || fail "insmod $m"; done </modules.order
o9p=trans=virtio,version=9p2000.L,msize=524288
mount9p() { # tag dir opts; the virtio devices may show up a little late
  i=0
  until mount -t 9p -o "$o9p,$3" "$1" "$2" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "mount 9p $1"; sleep 0.05
  done
}
mkdir -p /lower /rw /newroot /ctl
mount9p hostroot /lower cache=loose,ro
mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir /rw/upper /rw/work || fail "tmpfs"
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || fail "overlay"
mount9p ctl /ctl cache=none
mount -t tmpfs -o mode=0755 tmpfs /newroot/run || fail "tmpfs /run"
mkdir -p /newroot/run/rmig-vm && mount --move /ctl /newroot/run/rmig-vm || fail "move ctl"
wd=$(cat /newroot/run/rmig-vm/workdir)
mkdir -p "/newroot$wd" && mount9p work "/newroot$wd" cache=mmap
mount --move /dev /newroot/dev || fail "move /dev"
umount /proc
exec switch_root /newroot /run/rmig-vm/guest-init.sh
INIT

modlist=$(modprobe -S "$kver" --show-depends -a virtio_pci 9pnet_virtio 9p overlay 2>&1 \
  | awk '$1 == "insmod" && !seen[$2]++ { print $2 }') || true
[ -n "$modlist" ] || die_setup "modprobe -S $kver --show-depends failed"
key=$( { echo "$init_script"; echo "$kver $stamp"; echo "$modlist"; stat -L -c '%s %Y' "$busybox"; } \
  | sha256sum | cut -c1-16)
vmlinux=$cache/vmlinux
initrd=$cache/initramfs-$key.cpio

build_cache() {
  local tmp off
  if [ ! -s "$vmlinux" ] || [ "$(cat "$cache/vmlinux.stamp" 2>/dev/null)" != "$stamp" ]; then
    # vmlinuz is a bzImage whose payload is an XZ stream: skip to its magic.
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
    [ -n "$off" ] || { echo "run-in-vm: no XZ payload in $vmlinuz" >&2; return 1; }
    tmp=$(mktemp "$cache/vmlinux.XXXXXX") || return 1
    tail -c +$((off + 1)) "$vmlinuz" | xz -dc --single-stream >"$tmp" 2>/dev/null
    if [ "$(head -c 4 "$tmp" | od -An -tx1 | tr -d ' \n')" != 7f454c46 ]; then
      rm -f "$tmp"; echo "run-in-vm: extracting vmlinux from $vmlinuz failed" >&2; return 1
    fi
    chmod 644 "$tmp" && mv -f "$tmp" "$vmlinux" && echo "$stamp" >"$cache/vmlinux.stamp"
  fi
  if [ ! -s "$initrd" ]; then
    tmp=$(mktemp -d "$cache/initramfs.XXXXXX") || return 1
    mkdir -p "$tmp"/{bin,dev,proc,sys}
    cp "$busybox" "$tmp/bin/busybox"
    printf '%s\n' "$init_script" >"$tmp/init" && chmod 755 "$tmp/init"
    : >"$tmp/modules.order"
    while read -r m; do
      mkdir -p "$tmp$(dirname "$m")" && cp "$m" "$tmp$m" && echo "${m#/}" >>"$tmp/modules.order" \
        || { rm -rf "$tmp"; return 1; }
    done <<<"$modlist"
    (cd "$tmp" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$tmp.cpio" \
      && mv -f "$tmp.cpio" "$initrd"
    rm -rf "$tmp" "$tmp.cpio"
    [ -s "$initrd" ] || { echo "run-in-vm: building the initramfs failed" >&2; return 1; }
    find "$cache" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "${initrd##*/}" -delete 2>/dev/null
  fi
}
if [ ! -s "$vmlinux" ] || [ ! -s "$initrd" ] || [ "$(cat "$cache/vmlinux.stamp" 2>/dev/null)" != "$stamp" ]; then
  exec 9>"$cache/.lock"
  flock -w 300 9 || die_setup "timed out waiting for the lock on $cache"
  build_cache || die_setup "could not prepare the guest kernel/initramfs in $cache"
  exec 9>&-
fi

# --- per-run dir: control share (command, env, output, exit code), console log
run=$(mktemp -d "${TMPDIR:-/tmp}/rmig-vm.XXXXXX") || die_setup "mktemp failed"
ctl=$run/ctl
mkdir -p "$ctl"
timeout_pid=
cat_pids=()
cleanup() {  # on any exit: QEMU must not outlive us
  local p q=
  if [ -n "$timeout_pid" ]; then  # still running: interrupted
    q=$(cat "$run/qemu.pid" 2>/dev/null)
    kill "$timeout_pid" ${q:+"$q"} 2>/dev/null
    for _ in $(seq 50); do kill -0 "$timeout_pid" ${q:+"$q"} 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$timeout_pid" ${q:+"$q"} 2>/dev/null
  fi
  for p in "${cat_pids[@]}"; do kill "$p" 2>/dev/null; done
  if [ "$keep" = 1 ]; then echo "run-in-vm: kept $run" >&2; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

cp "$here/guest-init.sh" "$ctl/guest-init.sh" && chmod 755 "$ctl/guest-init.sh"
printf '%s\n' "$workdir" >"$ctl/workdir"
pwd -P >"$ctl/cwd"  # the command starts here: in the work share, or read-only via /
{
  printf 'RMIG_VM_CMD=('; printf ' %q' "$@"; printf ' )\n'
  for v in PATH HOME $(compgen -e | grep -E '^(RMIG_|GTEST_)'); do
    [ -n "${!v+x}" ] && printf 'export %s=%q\n' "$v" "${!v}"
  done
} >"$ctl/cmd.sh"

# The command's stdout/stderr are files in the control share (9p writes go
# straight to the host file); follow them here and copy them out as they grow.
: >"$ctl/stdout"; : >"$ctl/stderr"
follow() { # FILE: copy new bytes to stdout until $run/qemu.exited appears, then the rest
  local f=$1 off=0 size last=0
  while :; do
    [ -e "$run/qemu.exited" ] && last=1
    size=$(stat -c %s "$f" 2>/dev/null) || size=$off
    if [ "$size" -gt "$off" ]; then
      tail -c +$((off + 1)) "$f" | head -c $((size - off))
      off=$size
    fi
    [ $last = 1 ] && return 0
    sleep 0.1
  done
}
follow "$ctl/stdout" & cat_pids+=($!)
follow "$ctl/stderr" >&2 & cat_pids+=($!)

# QEMU 7.2 multi-threaded TCG very rarely aborts during boot (seen once in ~50
# boots: msix_table_mmio_write assertion while the guest set up virtio-pci).
# Such a crash before the command started is retried; nothing has run yet.
retries=${RMIG_VM_BOOT_RETRIES:-2}
deadline=$(( $(date +%s) + timeout_s ))
t_start=$(date +%s.%N)
for ((attempt = 1; ; attempt++)); do
  left=$(( deadline - $(date +%s) ))
  [ $left -gt 0 ] || { qrc=124; break; }
  rm -f "$run/qemu.pid"
  timeout -k 5 "$left" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu "${RMIG_VM_CPU:-Nehalem}" -smp "$smp" -m "$mem" -machine q35 \
    -display none -no-reboot -nic none -nodefaults -no-user-config \
    -serial "file:$run/console.log" \
    -kernel "$vmlinux" -initrd "$initrd" \
    -append "console=ttyS0 quiet loglevel=4 panic=-1 tsc=reliable ${RMIG_VM_APPEND:-}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$ctl,mount_tag=ctl,security_model=none" \
    -virtfs "local,path=$workdir,mount_tag=work,security_model=none,multidevs=remap" \
    -pidfile "$run/qemu.pid" </dev/null >"$run/qemu.out" 2>&1 &
  timeout_pid=$!
  wait "$timeout_pid" 2>/dev/null  # no "Aborted ..." job notice; qemu.out says why
  qrc=$?
  timeout_pid=
  [ "$qrc" -gt 128 ] && [ "$qrc" != 137 ] || break  # only QEMU killed by a signal (abort)
  [ -e "$ctl/started" ] || [ -e "$ctl/setup-failed" ] || [ -e "$ctl/rc" ] && break
  [ "$attempt" -le "$retries" ] || break
  echo "run-in-vm: QEMU died during boot (exit $qrc: $(tail -n 1 "$run/qemu.out")); retrying" >&2
  cat "$run/console.log" >>"$run/console.failed-boots.log" 2>/dev/null
done
t_end=$(date +%s.%N)
: >"$run/qemu.exited"
for _ in $(seq 100); do  # bounded: the followers need at most one more pass
  alive=0
  for p in "${cat_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.05
done

show_console() {
  echo "---- run-in-vm: QEMU output ----" >&2
  cat "$run/qemu.out" >&2 2>/dev/null
  echo "---- run-in-vm: console log ----" >&2
  cat "$run/console.log" >&2 2>/dev/null
  echo "---- end of console log ----" >&2
}

if [ "$verbose" = 1 ]; then
  echo "run-in-vm: kernel $kver, cache $cache" >&2
  [ -s "$ctl/timings" ] && sed 's/^/run-in-vm: guest /' "$ctl/timings" >&2
  awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "run-in-vm: wall %.2f s (qemu start to exit)\n", b - a }' >&2
  [ "$keep" = 1 ] && echo "run-in-vm: console log $run/console.log" >&2
fi

if [ -s "$ctl/rc" ]; then
  rc=$(cat "$ctl/rc")
  [[ $rc =~ ^[0-9]+$ ]] || rc=125
  exit "$rc"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  echo "run-in-vm: timed out after ${timeout_s}s" >&2
  if [ -e "$ctl/started" ]; then
    echo "run-in-vm: the command was running; last console lines:" >&2
    tail -n 20 "$run/console.log" >&2 2>/dev/null
  else
    show_console
  fi
  exit 124
fi
if [ -s "$ctl/setup-failed" ]; then
  echo "run-in-vm: Soft-RoCE setup failed in the VM: $(cat "$ctl/setup-failed")" >&2
else
  echo "run-in-vm: the VM failed (qemu exit $qrc) before the command finished" >&2
fi
show_console
exit 125
