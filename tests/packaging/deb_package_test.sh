#!/usr/bin/env bash
# The .deb as a user gets it, built by cpack from BUILD_DIR into a temporary
# folder (as scripts/package.sh does, without rebuilding):
#  - its control fields: name, version (the binary's), architecture, section,
#    maintainer, Depends computed by dpkg-shlibdeps (libc6, libssl3, ...:
#    every one a Debian package known here), Recommends qemu-system-x86;
#  - its files: rmig, librmig.so.2 + rmig.h + rmig.pc, every man page of man/
#    (gzipped), the hw-configs, the docs; no lab or test files, nothing in
#    /usr/local;
#  - unpacked with dpkg -x: `rmig --version` runs, --profile finds the
#    profiles unpacked beside it, `man` renders every page without warnings
#    and finds rmig(1) and rmig(3) by name, and a C program builds against the
#    unpacked header and library and runs.
# Usage: deb_package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
for tool in cpack dpkg-deb dpkg-shlibdeps file man cc; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing: scripts/deps.sh installs it" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

t0=$SECONDS
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1 ||
  { tail -n 30 "$tmp/cpack.log" >&2; fail "cpack failed (log above)"; }
debs=("$tmp"/out/rmig_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected one rmig_*.deb in $tmp/out, found: $(ls "$tmp/out")"
deb=${debs[0]}
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) in $((SECONDS - t0)) s"

# --- control fields -------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
version=$("$build/cli/rmig" --version | awk '{print $2}')
[ "$(field Package)" = rmig ] || fail "Package is '$(field Package)', not rmig"
[[ "$(field Version)" == "$version"-* ]] || fail "Version '$(field Version)' is not the binary's $version-REVISION"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture is '$(field Architecture)'"
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
[ -n "$(field Section)" ] || fail "no Section"
[ -n "$(field Description)" ] || fail "no Description"
[[ "$(field Recommends)" == *qemu-system-x86* ]] || fail "Recommends '$(field Recommends)' lacks qemu-system-x86"
depends=$(field Depends)
echo "Depends: $depends"
# Every dependency is a real Debian package (installed here: the build linked it).
IFS=',' read -ra alternatives <<<"$depends"
names=()
for dep in "${alternatives[@]}"; do
  name=$(sed -E 's/^ *//; s/[ (|].*//' <<<"$dep")
  names+=("$name")
  [[ "$name" != *-dev ]] || fail "Depends names a -dev package: $dep"
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" ||
    fail "Depends names '$name', which is not an installed Debian package here"
done
for lib in libc6 libstdc++6 libssl3; do
  printf '%s\n' "${names[@]}" | grep -qxF "$lib" || fail "Depends lacks $lib (dpkg-shlibdeps did not run?)"
done

# librmig.so.2 is registered with ldconfig (dpkg's trigger), and the unit
# files reach systemd (postinst).
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./triggers 2>/dev/null | grep -qx "activate-noawait ldconfig" ||
  fail "no ldconfig trigger in the control archive"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst 2>/dev/null | grep -q "daemon-reload" ||
  fail "postinst does not reload systemd"

# --- contents -------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$tmp/files"
has() { grep -qxE "$1" "$tmp/files" || fail "the package lacks $1"; }
has /usr/bin/rmig
has '/usr/lib/([a-z0-9_-]+/)?librmig\.so\.2(\.[0-9.]+)?'
has '/usr/lib/([a-z0-9_-]+/)?pkgconfig/rmig\.pc'
has /usr/include/rmig.h
has /usr/share/rmig/hw-configs/dc-25g.json
has /usr/share/doc/rmig/usage.md
pages=0
for page in "$src"/man/*.[1-8]; do
  name=$(basename "$page")
  has "/usr/share/man/man${name##*.}/$name\.gz"
  pages=$((pages + 1))
done
# The service units of packaging/systemd, and their settings as conffiles.
for unit in "$src"/packaging/systemd/*.{service,socket,path,target,timer}; do
  [ -e "$unit" ] || continue
  has "/usr/lib/systemd/system/$(basename "$unit" | sed 's/[.]/\\&/g')"
done
for default in "$src"/packaging/systemd/*.default; do
  [ -e "$default" ] || continue
  conf=/etc/default/$(basename "$default" .default)
  has "$conf"
  dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qxF "$conf" || fail "$conf is not a conffile"
done
if grep -E '^/usr/local|rmig-test-guest|/rmig-lab$|/rmig-synth$|/rmig-wan$' "$tmp/files"; then
  fail "the package holds lab or misplaced files (above)"
fi
echo "contents: rmig, librmig.so.2, rmig.h, rmig.pc, $pages man pages, hw-configs, docs"

# --- unpacked -------------------------------------------------------------
root=$tmp/root
dpkg -x "$deb" "$root"
got=$("$root/usr/bin/rmig" --version)
[ "$got" = "$("$build/cli/rmig" --version)" ] || fail "unpacked rmig --version says '$got'"
echo "unpacked: $got"
# The profiles unpacked beside the binary, not the source tree's.
msg=$(env -u RMIG_HW_CONFIGS "$root/usr/bin/rmig" migrate --profile no-such-profile --help 2>&1) && fail "an unknown profile was accepted"
grep -qF "not in $root/usr/share/rmig/hw-configs" <<<"$msg" || fail "profiles not looked up beside the binary: $msg"
env -u RMIG_HW_CONFIGS "$root/usr/bin/rmig" migrate --profile dc-25g --help >/dev/null ||
  fail "the unpacked rmig does not find profile dc-25g"
for gz in "$root"/usr/share/man/man*/*.gz; do
  warnings=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$gz" 2>&1 >/dev/null) || fail "man -l $gz failed"
  [ -z "$warnings" ] || fail "$(basename "$gz") renders with warnings: $warnings"
done
man -M "$root/usr/share/man" 1 rmig 2>/dev/null | grep -q "rmig - live-migrate" || fail "man 1 rmig does not find the page"
man -M "$root/usr/share/man" 3 rmig 2>/dev/null | grep -q "rmig_source_migrate" || fail "man 3 rmig does not find the page"
# The C API as packaged: header, library and pkg-config file.
libdir=$(dirname "$(find "$root/usr/lib" -name 'librmig.so.2*' | head -n 1)")
cat >"$tmp/use_api.c" <<'C'
#include <rmig.h>
#include <stdio.h>
int main(void) {
    rmig_source* s = rmig_source_new();
    if (!s || rmig_source_set_workers(s, 0) != -1) return 1; /* 0 is out of range */
    printf("C API %d: %s\n", RMIG_CAPI_VERSION, rmig_source_error(s));
    rmig_source_free(s);
    return 0;
}
C
[ -e "$libdir/librmig.so" ] || ln -s librmig.so.2 "$libdir/librmig.so"  # the dev symlink
cc -std=c11 -Wall -Werror -I"$root/usr/include" -o "$tmp/use_api" "$tmp/use_api.c" -L"$libdir" -lrmig
LD_LIBRARY_PATH=$libdir "$tmp/use_api" || fail "a program linked against the unpacked librmig failed"
echo "ok: $(basename "$deb") holds what it should and works unpacked ($((SECONDS - t0)) s)"
