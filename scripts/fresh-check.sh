#!/usr/bin/env bash
# Runs README's two commands the way a new user would: in a fresh, minimal
# Debian 12 root built from Debian's mirror, on a clean clone of this
# repository's HEAD. Catches what a machine that kept earlier installs hides
# (a package deps.sh forgot, a tool only the developers' machines have).
#
# Usage (as root): scripts/fresh-check.sh [--only demo|test] [--keep] [--dir DIR]
#   --only demo|test  run just one of the two commands (default: both)
#   --keep            keep the root afterwards (default: delete it)
#   --dir DIR         where to build the root (default: /var/tmp/rmig-fresh.XXXX)
#
# Takes 35-60 min on a 2-core machine (root ~2 min, packages ~5 min, the rest
# is README's commands). Too slow for every CI run; run it before resolving an
# issue, after changing scripts/deps.sh, scripts/*.sh or the build, and when
# adding a tool or package to any test (docs/testing.md).
# Exit code: 0 both commands passed, 1 one failed (log names which), 2 usage
# or setup error. The log of each command is kept in LOGDIR (printed).
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
only=""
keep=0
dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=${2:-}; shift 2 ;;
    --keep) keep=1; shift ;;
    --dir) dir=${2:-}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fresh-check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $only in ""|demo|test) ;; *) echo "fresh-check: --only takes demo or test" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: run as root (it builds a root with mmdebstrap and chroots into it)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v mmdebstrap >/dev/null; then
  echo "fresh-check: installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi
[ -n "$dir" ] || dir=$(mktemp -d /var/tmp/rmig-fresh.XXXX)
mkdir -p "$dir"
root=$dir/root
logdir=$dir/logs
mkdir -p "$logdir"

mounted=()
cleanup() {
  local m
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    m=${mounted[$i]}
    umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || true
  done
  # Never delete through a mount: /proc, /sys and /dev are the host's own.
  if [ "$keep" -eq 0 ] && [ -d "$root" ]; then
    if grep -q " $root/" /proc/mounts; then
      echo "fresh-check: mounts remain under $root; not deleting it" >&2
    else
      rm -rf "$root"
    fi
  fi
}
trap cleanup EXIT

t0=$(date +%s)
stamp() { printf '%4ds' $(($(date +%s) - t0)); }

echo "fresh-check: $(stamp) building a Debian 12 root in $root"
mmdebstrap --quiet --variant=important bookworm "$root" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main" >"$logdir/mmdebstrap.log" 2>&1 ||
  { echo "fresh-check: mmdebstrap failed (log $logdir/mmdebstrap.log)" >&2; tail -n 20 "$logdir/mmdebstrap.log" >&2; exit 2; }

echo "fresh-check: $(stamp) cloning $(git -C "$repo" rev-parse --short HEAD) (committed work only)"
git clone --quiet --no-local "$repo" "$root/rmig"
cp /etc/resolv.conf "$root/etc/resolv.conf"

# The root a mount point of its own, as / is on a machine: `ip netns exec`
# remounts / as a slave in its own mount namespace, which fails with EINVAL
# ("mount --make-rslave /" failed) when the chroot's / is a plain directory.
mount --bind "$root" "$root"
mount --make-private "$root"
mounted+=("$root")
for m in proc sys dev; do
  mount --rbind "/$m" "$root/$m"
  mount --make-rslave "$root/$m"
  mounted+=("$root/$m")
done
# Its own /run and /tmp, as on a machine of its own (ip netns, QEMU sockets).
for m in run tmp; do
  mount -t tmpfs "fresh-$m" "$root/$m"
  mounted+=("$root/$m")
done

run() {
  local name=$1 cmd=$2 rc=0 t=$SECONDS
  echo "fresh-check: $(stamp) $cmd"
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    TERM=dumb LANG=C.UTF-8 bash -c "cd /rmig && $cmd" >"$logdir/$name.log" 2>&1 || rc=$?
  echo "fresh-check: $(stamp) $cmd: exit $rc after $((SECONDS - t)) s (log $logdir/$name.log)"
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$logdir/$name.log" | sed 's/^/  | /'
  fi
  return "$rc"
}

status=0
if [ "$only" != test ]; then run demo "bash scripts/demo.sh" || status=1; fi
if [ "$only" != demo ]; then run test "bash scripts/test.sh" || status=1; fi
grep -E "tests passed|tests failed" "$logdir/test.log" 2>/dev/null | sed 's/^/fresh-check: test summary: /' || true
if [ "$status" -eq 0 ]; then
  echo "fresh-check: $(stamp) PASSED on a fresh Debian 12 root (logs in $logdir)"
else
  echo "fresh-check: $(stamp) FAILED (logs in $logdir)"
fi
exit "$status"
