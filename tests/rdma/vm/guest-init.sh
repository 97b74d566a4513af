#!/bin/bash
# PID 1 inside the run-in-vm.sh guest, after switch_root onto the host's root
# (read-only 9p under a tmpfs overlay). Not meant to run on a host.
# Brings up Soft-RoCE (rxe0 on dummy d0, 10.11.12.1/24), runs the command from
# /run/rmig-vm/cmd.sh with stdout/stderr into /run/rmig-vm/{stdout,stderr}
# (files in the 9p control share, which the host follows), writes its exit code
# to /run/rmig-vm/rc and powers off.
ctl=/run/rmig-vm
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec </dev/null >/dev/console 2>&1

now() { cut -d' ' -f1 /proc/uptime; }
off() {
  sync
  if [ -x /bin/busybox ]; then /bin/busybox poweroff -f; fi
  echo o >/proc/sysrq-trigger
  sleep 30
}
setup_fail() {
  echo "rmig-vm: setup FAILED: $*"
  echo "$*" >"$ctl/setup-failed"
  dmesg | tail -n 40
  off
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o ptmxmode=0666,gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
ln -sfn /proc/self/fd /dev/fd 2>/dev/null
echo "boot $(now) s" >"$ctl/timings"
hostname rmig-vm

# PID 1 starts with an 8 MiB memlock limit: verbs need to pin memory.
ulimit -l unlimited
ulimit -n 65536 2>/dev/null

ip link set lo up || setup_fail "lo up"
modprobe -a crc32_generic ib_core ib_uverbs rdma_ucm rdma_rxe dummy || setup_fail "modprobe"
ip link add d0 type dummy || setup_fail "ip link add d0"
ip addr add 10.11.12.1/24 dev d0 || setup_fail "ip addr add"
ip link set d0 up mtu 9000 || setup_fail "d0 up"
rdma link add rxe0 type rxe netdev d0 || setup_fail "rdma link add rxe0"
# Ready when the port is ACTIVE and GID 1 (RoCE v2 on 10.11.12.1) is filled in.
port=/sys/class/infiniband/rxe0/ports/1
for i in $(seq 200); do
  case $(cat "$port/state" 2>/dev/null) in *ACTIVE*)
    g=$(cat "$port/gids/1" 2>/dev/null)
    [ -n "$g" ] && [ "${g//[0:]/}" != "" ] && break ;;
  esac
  [ "$i" = 200 ] && setup_fail "rxe0 port not ACTIVE with GID 1 after 10 s"
  sleep 0.05
done
for d in /dev/infiniband/uverbs0 /dev/infiniband/rdma_cm; do
  [ -c "$d" ] || setup_fail "missing $d"
done
echo "rxe_ready $(now) s" >>"$ctl/timings"

RMIG_VM_CMD=()
. "$ctl/cmd.sh" || setup_fail "reading cmd.sh"
export RMIG_VM=1 RMIG_VM_RDMA_DEV=rxe0 RMIG_VM_RDMA_IP=10.11.12.1 RMIG_VM_GID_INDEX=1
# /tmp is the host's (through 9p + overlay), where UNIX sockets cannot be bound;
# scratch space for programs (QEMU sockets, lab dirs) is a tmpfs of its own.
mkdir -p /run/tmp && chmod 1777 /run/tmp
export USER=root LOGNAME=root TMPDIR=/run/tmp
wd=$(cat "$ctl/cwd")
cd "$wd" 2>/dev/null || cd "$(cat "$ctl/workdir")" || setup_fail "cd $wd"
echo started >"$ctl/started"
"${RMIG_VM_CMD[@]}" </dev/null >"$ctl/stdout" 2>"$ctl/stderr"
rc=$?
echo "payload_done $(now) s rc=$rc" >>"$ctl/timings"
echo "$rc" >"$ctl/rc"
echo "rmig-vm: command exited $rc"
off
