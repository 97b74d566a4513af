#!/usr/bin/env bash
# Builds rmig's Debian package: installs what is missing (scripts/deps.sh),
# makes a Release build for prefix /usr without tests or benchmarks, and runs
# cpack (packaging/CMakeLists.txt). Prints the .deb's path on the last line.
# Usage: scripts/package.sh [BUILD_DIR] [OUT_DIR]
#   BUILD_DIR  default build-package/ in the repository
#   OUT_DIR    where the .deb goes; default BUILD_DIR
# Then: apt install ./rmig_*.deb   (docs/usage.md, Install)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-package}
out=${2:-$build}
"$root/scripts/deps.sh"

echo "package: building in $build (Release, prefix /usr)" >&2
"$root/scripts/build.sh" "$build" -DCMAKE_INSTALL_PREFIX=/usr -DRMIG_BUILD_TESTS=OFF -DRMIG_BUILD_BENCH=OFF |
  tail -n 1 >&2
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/rmig_*.deb
echo "package: cpack" >&2
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$out" >"$out/cpack.log" 2>&1 ||
  { tail -n 30 "$out/cpack.log" >&2; echo "package: cpack failed (log $out/cpack.log)" >&2; exit 1; }
debs=("$out"/rmig_*.deb)
[ -f "${debs[0]}" ] || { echo "package: cpack made no rmig_*.deb in $out (log $out/cpack.log)" >&2; exit 1; }
dpkg-deb -f "${debs[0]}" Package Version Architecture Depends Recommends >&2
echo "${debs[0]}"
