#!/usr/bin/env bash
# The C API as a VMM gets it: `cmake --install --component capi` into a fresh
# prefix, then capi_test.c (the full C API test: two regions migrated over tcp
# with a live writer) compiled and linked only against what was installed,
# found through pkg-config. Also checks that librmig.so exports rmig_* and
# nothing else (engine/capi/rmig.map).
# Usage: installed_library_test.sh BUILD_DIR CAPI_TEST_SOURCE
set -euo pipefail
build=$1
src=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix" --component capi >/dev/null
pc=$(find "$prefix" -name rmig.pc)
[ -n "$pc" ] || { echo "FAIL: no rmig.pc installed under $prefix" >&2; exit 1; }
[ -f "$prefix/include/rmig.h" ] || { echo "FAIL: rmig.h not installed" >&2; exit 1; }
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir rmig)
lib=$(readlink -f "$libdir/librmig.so")
[ -f "$lib" ] || { echo "FAIL: librmig.so not found in $libdir (from $pc)" >&2; exit 1; }

# Only the C API leaves the library.
foreign=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ && $3 !~ /^rmig_/ {print $3}' | grep -v '^RMIG_2$' || true)
if [ -n "$foreign" ]; then
  echo "FAIL: librmig.so exports symbols outside the C API:" >&2
  echo "$foreign" | head -n 20 >&2
  exit 1
fi
exported=$(nm -D --defined-only "$lib" | awk '$3 ~ /^rmig_/' | wc -l)
declared=$(grep -cE '^[a-z].*\brmig_[a-z_]+\(' "$prefix/include/rmig.h")
echo "librmig.so exports $exported rmig_* functions; rmig.h declares $declared"
[ "$exported" -eq "$declared" ] || { echo "FAIL: exports and declarations differ" >&2; exit 1; }

# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -o "$prefix/capi_test" "$src" $(pkg-config --cflags --libs rmig) -lpthread
LD_LIBRARY_PATH=$libdir timeout 80 "$prefix/capi_test"
# ldd's output is taken whole first: `ldd | grep -q` under pipefail fails
# at random when grep exits early and ldd dies of SIGPIPE (seen in CI).
linked=$(LD_LIBRARY_PATH=$libdir ldd "$prefix/capi_test")
grep -qF "librmig.so.2 => $libdir" <<<"$linked" ||
  { echo "FAIL: capi_test did not run against the installed librmig.so.2" >&2; echo "$linked" >&2; exit 1; }
echo "ok: capi_test built and passed against the installed librmig.so.2"
