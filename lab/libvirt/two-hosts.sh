#!/usr/bin/env bash
# Two libvirt "hosts" on one machine, for migrations through a relay
# (docs/libvirt.md). Each host is a libvirtd (Debian 12's monolithic 9.0.0)
# in its own mount, UTS and network namespaces, with its own hostname,
# host_uuid, /run, /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt and
# /var/log/libvirt (bind mounts of per-host directories under the lab dir).
# No systemd: libvirtd runs directly, under `timeout`, so it ends by itself.
#
# Usage: lab/libvirt/two-hosts.sh start|stop|env|status|exec HOST CMD...
#   RMIG_LIBVIRT_LAB   lab directory             (default /tmp/rmig-libvirt-lab)
#   RMIG_LIBVIRT_LIFE  seconds the daemons live  (default 3600)
#
# In the root namespaces a host's files are $LAB/<host>/{run,etc,lib,cache,log};
# inside, they are the usual /run, /etc/libvirt, /var/lib/libvirt, ... So a
# migration socket /run/rmig/NAME.sock is $LAB/a/run/rmig/NAME.sock on the
# source and $LAB/b/run/rmig/NAME.sock on the destination: two files, and a
# relay in the root namespaces joins them. /var/lib/libvirt/images is each
# host's own (storage migrations copy it); /var/lib/libvirt/shared is one
# directory seen by both ($LAB/shared), the "shared storage" of memory-only
# migrations (libvirt only trusts network file systems as shared: those
# need virsh migrate --unsafe).
set -euo pipefail

LAB=${RMIG_LIBVIRT_LAB:-/tmp/rmig-libvirt-lab}
LIFE=${RMIG_LIBVIRT_LIFE:-3600}
HOSTS=(a b)

die() { echo "two-hosts: $*" >&2; exit 1; }
host_uuid() { case $1 in a) echo 7d1c0a5e-0000-4000-8000-00000000000a ;; b) echo 7d1c0a5e-0000-4000-8000-00000000000b ;; esac; }
sock() { echo "$LAB/$1/run/libvirt/libvirt-sock"; }
uri() { echo "qemu+unix:///system?socket=$(sock "$1")"; }
daemon_pid() { cat "$LAB/$1/unshare.pid" 2>/dev/null || true; }

write_config() {  # host
  local h=$1 d=$LAB/$1
  mkdir -p "$d"/{run/rmig,etc/qemu,lib/images,lib/shared,lib/qemu,cache,log/qemu} "$LAB/shared"
  # Only the UNIX sockets: the source daemon reaches the destination's by
  # path (p2p), and the tests reach both the same way. No auth on them:
  # only root can open the lab directory's sockets.
  cat >"$d/etc/libvirtd.conf" <<CONF
host_uuid = "$(host_uuid "$h")"
listen_tls = 0
listen_tcp = 0
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
  # QEMU as root, TCG; nothing that needs systemd, dbus, cgroups, virtlogd,
  # SELinux/AppArmor or per-VM /dev namespaces.
  cat >"$d/etc/qemu.conf" <<CONF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
lock_manager = "nop"
CONF
  # libvirt.conf of the clients inside the host (virsh run via `exec`).
  echo 'uri_default = "qemu:///system"' >"$d/etc/libvirt.conf"
}

start_host() {  # host
  local h=$1 d=$LAB/$1
  [ -n "$(daemon_pid "$h")" ] && kill -0 "$(daemon_pid "$h")" 2>/dev/null && die "host $h already runs (pid $(daemon_pid "$h")); stop first"
  write_config "$h"
  rm -f "$(sock "$h")" "$d/run/libvirtd.pid"
  for m in /run /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do [ -d "$m" ] || mkdir -p "$m"; done
  # --propagation private: the bind mounts stay in the host's namespace
  # and vanish with its last process (libvirtd and its QEMUs).
  setsid timeout --signal=TERM --kill-after=10 "$LIFE" \
    unshare --mount --uts --net --propagation private -- bash -c '
      set -e
      d=$1 h=$2
      hostname "rmig-host-$h"
      ip link set lo up
      mount --bind "$d/run" /run
      mount --bind "$d/etc" /etc/libvirt
      mount --bind "$d/lib" /var/lib/libvirt
      mount --bind "$d/cache" /var/cache/libvirt
      mount --bind "$d/log" /var/log/libvirt
      mount --bind "$3" /var/lib/libvirt/shared
      exec libvirtd -f /etc/libvirt/libvirtd.conf
    ' two-hosts "$d" "$h" "$LAB/shared" >"$d/libvirtd.out" 2>&1 </dev/null &
  echo $! >"$d/timeout.pid"
}

wait_ready() {  # host
  local h=$1
  for _ in $(seq 1 300); do
    if virsh -q -c "$(uri "$h")" version >/dev/null 2>&1; then return 0; fi
    kill -0 "$(cat "$LAB/$h/timeout.pid")" 2>/dev/null || { cat "$LAB/$h/libvirtd.out" >&2; die "libvirtd of host $h exited (see $LAB/$h/log/libvirtd.log)"; }
    sleep 0.1
  done
  die "libvirtd of host $h not answering on $(sock "$h") after 30 s"
}

stop_host() {  # host
  local h=$1 d=$LAB/$1 tpid
  tpid=$(cat "$d/timeout.pid" 2>/dev/null || true)
  # Domains first (libvirtd leaves its QEMUs running when it stops).
  if [ -S "$(sock "$h")" ]; then
    for dom in $(timeout 20 virsh -q -c "$(uri "$h")" list --name 2>/dev/null || true); do
      timeout 20 virsh -q -c "$(uri "$h")" destroy "$dom" >/dev/null 2>&1 || true
    done
    for dom in $(timeout 20 virsh -q -c "$(uri "$h")" list --all --name 2>/dev/null || true); do
      timeout 20 virsh -q -c "$(uri "$h")" undefine "$dom" >/dev/null 2>&1 || true
    done
  fi
  # QEMUs that outlived their daemon: libvirt keeps their pids in run/libvirt/qemu.
  for p in "$d"/run/libvirt/qemu/*.pid; do
    [ -f "$p" ] || continue
    local q; q=$(cat "$p"); kill -0 "$q" 2>/dev/null && kill -KILL "$q" 2>/dev/null || true
  done
  if [ -n "$tpid" ] && kill -0 "$tpid" 2>/dev/null; then
    kill -TERM "$tpid" 2>/dev/null || true   # timeout forwards TERM to libvirtd
    for _ in $(seq 1 100); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$tpid" 2>/dev/null && kill -KILL -- "-$tpid" 2>/dev/null || true
  fi
  rm -f "$d/timeout.pid"
}

print_env() {
  cat <<ENV
RMIG_LIBVIRT_LAB=$LAB
LIBVIRT_A_URI='$(uri a)'
LIBVIRT_B_URI='$(uri b)'
HOST_A_RUN=$LAB/a/run
HOST_B_RUN=$LAB/b/run
HOST_A_IMAGES=$LAB/a/lib/images
HOST_B_IMAGES=$LAB/b/lib/images
SHARED_IMAGES=$LAB/shared
ENV
}

case ${1:-} in
  start)
    command -v libvirtd >/dev/null || die "libvirtd missing: scripts/deps.sh installs libvirt-daemon-driver-qemu"
    [ "$(id -u)" -eq 0 ] || die "needs root (namespaces, bind mounts, QEMU as root)"
    # libvirt's QEMU driver resolves its built-in default user and group (libvirt-qemu) before it reads
    # qemu.conf's user = "root": without it the driver does not start. Debian
    # creates it in libvirt-daemon-system's postinst (not installed: it pulls
    # systemd units, iptables and the default network).
    getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu ||
      die "cannot create the system group libvirt-qemu that libvirt's QEMU driver needs"
    getent passwd libvirt-qemu >/dev/null ||
      useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt --no-create-home --shell /usr/sbin/nologin libvirt-qemu ||
      die "cannot create the system user libvirt-qemu that libvirt's QEMU driver needs"
    mkdir -p "$LAB"
    for h in "${HOSTS[@]}"; do start_host "$h"; done
    for h in "${HOSTS[@]}"; do wait_ready "$h"; done
    print_env ;;
  stop)
    for h in "${HOSTS[@]}"; do stop_host "$h"; done ;;
  env) print_env ;;
  status)
    for h in "${HOSTS[@]}"; do
      if virsh -q -c "$(uri "$h")" hostname 2>/dev/null; then :; else echo "host $h: down"; fi
    done ;;
  exec)  # exec HOST CMD...: run CMD inside the host's namespaces
    h=${2:?host a or b}; shift 2
    pid=$(pgrep -P "$(pgrep -P "$(cat "$LAB/$h/timeout.pid")")" -x libvirtd || pgrep -P "$(cat "$LAB/$h/timeout.pid")" -x libvirtd) || die "host $h not running"
    exec nsenter -t "$pid" -m -u -n -- "$@" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
