#!/usr/bin/env bash
# Runs a command as on a machine without Debian's libhwloc-plugins (a fresh
# Debian 12 lacks it): HWLOC_PLUGINS_PATH points at an empty folder, which
# hwloc 2.9 honours. HWLOC_COMPONENTS_VERBOSE makes hwloc list every component
# it registers, so the check can prove that none came from a plugin.
# Usage: without_hwloc_plugins.sh EXPECTED_STDOUT_REGEX COMMAND [ARGS...]
set -euo pipefail
expect=$1
shift
empty=$(mktemp -d)
out=$(mktemp)
err=$(mktemp)
trap 'rm -rf "$empty" "$out" "$err"' EXIT

rc=0
HWLOC_PLUGINS_PATH=$empty HWLOC_COMPONENTS_VERBOSE=1 timeout 60 "$@" >"$out" 2>"$err" || rc=$?
cat "$out"
if grep -q "from plugin" "$err"; then
  echo "FAIL: hwloc still loaded a plugin; this run did not test the no-plugin path:" >&2
  grep "from plugin" "$err" >&2
  exit 1
fi
if ! grep -q "Registered discovery component .linux'" "$err"; then
  echo "FAIL: hwloc did not report its components (HWLOC_COMPONENTS_VERBOSE ignored?):" >&2
  cat "$err" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "FAIL: '$*' exited $rc without hwloc plugins:" >&2
  grep -v '^hwloc: ' "$err" >&2 || true
  exit 1
fi
if ! grep -Eq "$expect" "$out"; then
  echo "FAIL: output of '$*' lacks /$expect/" >&2
  exit 1
fi
echo "ok: '$*' works without hwloc plugins"
