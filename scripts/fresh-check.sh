#!/usr/bin/env bash
# Runs README's two commands the way a new user would, and installs the .deb
# the way an operator would: in a fresh, minimal Debian 12 root built from
# Debian's mirror, on a clean clone of this repository's HEAD. Catches what a
# machine that kept earlier installs hides (a package deps.sh forgot, a tool
# only the developers' machines have, a dependency the .deb does not declare).
#
# Usage (as root): scripts/fresh-check.sh [--only demo|test|deb] [--deb FILE] [--keep] [--dir DIR]
#   --only demo|test|deb  run just these stages, comma-separated (e.g.
#                     demo,test: README's two commands; default: all three)
#                     deb: scripts/package.sh in the root, then, in a second
#                     fresh root without any build dependency, `apt install
#                     ./rmig_*.deb`, `rmig --version`, `man rmig`, `apt remove
#                     rmig` and the binary gone (~25 min)
#   --deb FILE        the deb stage installs FILE (a .deb scripts/package.sh
#                     made on a Debian 12 host) instead of building one (~5 min)
#   --keep            keep the root afterwards (default: delete it)
#   --dir DIR         where to build the root (default: /var/tmp/rmig-fresh.XXXX)
#
# Takes 35-60 min on a 2-core machine (root ~2 min, packages ~5 min, the rest
# is README's commands). Too slow for every CI run; run it before resolving an
# issue, after changing scripts/deps.sh, scripts/*.sh or the build, and when
# adding a tool or package to any test (docs/testing.md).
# Exit code: 0 every stage passed, 1 one failed (log names which), 2 usage
# or setup error. The log of each stage is kept in LOGDIR (printed).
set -euo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
only=""
deb_file=""
keep=0
dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=${2:-}; shift 2 ;;
    --keep) keep=1; shift ;;
    --deb) deb_file=${2:-}; shift 2 ;;
    --dir) dir=${2:-}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fresh-check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for s in ${only//,/ }; do
  case $s in demo|test|deb) ;; *) echo "fresh-check: --only takes demo, test, deb or a comma-separated list of them" >&2; exit 2 ;; esac
done
wants() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
if [ -n "$deb_file" ]; then
  [ -f "$deb_file" ] || { echo "fresh-check: --deb $deb_file: no such file" >&2; exit 2; }
  deb_file=$(cd "$(dirname "$deb_file")" && pwd)/$(basename "$deb_file")
fi
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: run as root (it builds a root with mmdebstrap and chroots into it)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v mmdebstrap >/dev/null; then
  echo "fresh-check: installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi
[ -n "$dir" ] || dir=$(mktemp -d /var/tmp/rmig-fresh.XXXX)
mkdir -p "$dir"
root=$dir/root
install_root=$dir/install-root  # the deb stage's second root: no build dependencies
logdir=$dir/logs
mkdir -p "$logdir"

mounted=()
cleanup() {
  local m r
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    m=${mounted[$i]}
    umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null || true
  done
  # Never delete through a mount: /proc, /sys and /dev are the host's own.
  for r in "$root" "$install_root"; do
    if [ "$keep" -eq 0 ] && [ -d "$r" ]; then
      if grep -q " $r/" /proc/mounts; then
        echo "fresh-check: mounts remain under $r; not deleting it" >&2
      else
        rm -rf "$r"
      fi
    fi
  done
}
trap cleanup EXIT

t0=$(date +%s)
stamp() { printf '%4ds' $(($(date +%s) - t0)); }

# make_root DIR LOGNAME: a minimal Debian 12 root from Debian's mirror.
make_root() {
  echo "fresh-check: $(stamp) building a Debian 12 root in $1"
  mmdebstrap --quiet --variant=important bookworm "$1" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >"$logdir/$2.log" 2>&1 ||
    { echo "fresh-check: mmdebstrap failed (log $logdir/$2.log)" >&2; tail -n 20 "$logdir/$2.log" >&2; exit 2; }
  cp /etc/resolv.conf "$1/etc/resolv.conf"
}

# mount_root DIR: the mounts a chroot needs to act as a machine of its own.
mount_root() {
  local r=$1 m
  # The root a mount point of its own, as / is on a machine: `ip netns exec`
  # remounts / as a slave in its own mount namespace, which fails with EINVAL
  # ("mount --make-rslave /" failed) when the chroot's / is a plain directory.
  mount --bind "$r" "$r"
  mount --make-private "$r"
  mounted+=("$r")
  for m in proc sys dev; do
    mount --rbind "/$m" "$r/$m"
    mount --make-rslave "$r/$m"
    mounted+=("$r/$m")
  done
  # Its own /run and /tmp, as on a machine of its own (ip netns, QEMU sockets).
  for m in run tmp; do
    mount -t tmpfs "fresh-$m" "$r/$m"
    mounted+=("$r/$m")
  done
}

# The build root: README's commands, and the package unless --deb gives one.
if [ "$only" != deb ] || [ -z "$deb_file" ]; then
  make_root "$root" mmdebstrap
  echo "fresh-check: $(stamp) cloning $(git -C "$repo" rev-parse --short HEAD) (committed work only)"
  git clone --quiet --no-local "$repo" "$root/rmig"
  mount_root "$root"
fi

# run NAME CMD [ROOT [WHAT]]: CMD in /rmig of ROOT (default the build root; in
# / of the install root, which holds no clone), logged to LOGDIR/NAME.log and
# shown as WHAT (default CMD).
run() {
  local name=$1 cmd=$2 r=${3:-$root} rc=0 t=$SECONDS
  local what=${4:-$cmd}
  echo "fresh-check: $(stamp) $what"
  chroot "$r" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    TERM=dumb LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    bash -c "cd /rmig 2>/dev/null || cd /; $cmd" >"$logdir/$name.log" 2>&1 || rc=$?
  echo "fresh-check: $(stamp) $what: exit $rc after $((SECONDS - t)) s (log $logdir/$name.log)"
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$logdir/$name.log" | sed 's/^/  | /'
  fi
  return "$rc"
}

# The deb stage: the package built from the clone by scripts/package.sh,
# then installed, used and removed in a second fresh root that has none of the
# build dependencies, so its Depends alone must bring what rmig needs. man-db
# is installed first: Debian's "standard" tasks have it, the important variant
# does not.
deb_stage() {
  local deb check
  if [ -n "$deb_file" ]; then
    deb=$deb_file
    echo "fresh-check: $(stamp) installing the given $deb"
  else
    run package "bash scripts/package.sh /rmig/build-package /rmig/dist" || return 1
    deb=$(tail -n 1 "$logdir/package.log")
    [[ "$deb" == /rmig/dist/rmig_*.deb ]] && [ -f "$root$deb" ] ||
      { echo "fresh-check: scripts/package.sh did not print a .deb (log $logdir/package.log)"; return 1; }
    deb=$root$deb
  fi
  make_root "$install_root" mmdebstrap-install
  mount_root "$install_root"
  cp "$deb" "$install_root/tmp/"
  check='set -ex
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends man-db >/dev/null
    cd /tmp && apt install -y ./rmig_*.deb
    rmig --version
    man rmig | head -n 20
    man 3 rmig | grep -q rmig_source_migrate
    test -x /usr/bin/rmig && test -f /usr/include/rmig.h
    apt remove -y rmig
    hash -r  # bash remembers where rmig was
    if command -v rmig || test -e /usr/bin/rmig || test -e /usr/include/rmig.h; then
      echo "rmig is still installed after apt remove"; exit 1
    fi
    echo "deb: installed, ran, read its man page and removed on a fresh Debian 12"'
  run deb "$check" "$install_root" \
    "in a second fresh root: apt install ./$(basename "$deb"), rmig --version, man rmig, apt remove rmig"
}

status=0
if wants demo; then run demo "bash scripts/demo.sh" || status=1; fi
if wants test; then run test "bash scripts/test.sh" || status=1; fi
if wants deb; then deb_stage || status=1; fi
grep -E "tests passed|tests failed" "$logdir/test.log" 2>/dev/null | sed 's/^/fresh-check: test summary: /' || true
if [ "$status" -eq 0 ]; then
  echo "fresh-check: $(stamp) PASSED on a fresh Debian 12 root (logs in $logdir)"
else
  echo "fresh-check: $(stamp) FAILED (logs in $logdir)"
fi
exit "$status"
