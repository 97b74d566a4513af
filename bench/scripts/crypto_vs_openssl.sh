#!/usr/bin/env bash
# AES-256-GCM per core: rmig's frame cipher (security/frame_cipher) against
# `openssl speed -evp aes-256-gcm` on the same block size, in the same run.
# The ratio is seal / openssl (target >= 0.9). Interleaves the two tools
# (ROUNDS times) and keeps each one's best, since the machine may be shared.
# Usage: bench/scripts/crypto_vs_openssl.sh [BUILD_DIR=build] [BLOCK_SIZES="16384 1048576"] [SECONDS=3] [ROUNDS=2]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
sizes=${2:-16384 1048576}
secs=${3:-3}
rounds=${4:-2}
bench=$build/bench/rmig-crypto-bench
[ -x "$bench" ] || { echo "build rmig-crypto-bench first: ninja -C $build rmig-crypto-bench" >&2; exit 2; }
echo "AES-256-GCM, one core, GB/s = 10^9 bytes/s ($(openssl version | cut -d' ' -f1-2); best of $rounds x ${secs} s)"
printf '%10s %10s %10s %10s %8s\n' block openssl rmig-seal rmig-open ratio
for size in $sizes; do
  best_ossl=0 best_seal=0 best_open=0
  for _ in $(seq "$rounds"); do
    # openssl speed prints the rate in 1000s of bytes per second on its last line.
    k=$(openssl speed -evp aes-256-gcm -bytes "$size" -seconds "$secs" 2>/dev/null | awk 'END { sub(/k$/, "", $NF); print $NF }')
    ossl=$(awk -v k="$k" 'BEGIN { printf "%.3f", k * 1000 / 1e9 }')
    read -r seal open < <("$bench" "$size" "$secs")
    best_ossl=$(awk -v a="$best_ossl" -v b="$ossl" 'BEGIN { print (b > a ? b : a) }')
    best_seal=$(awk -v a="$best_seal" -v b="$seal" 'BEGIN { print (b > a ? b : a) }')
    best_open=$(awk -v a="$best_open" -v b="$open" 'BEGIN { print (b > a ? b : a) }')
  done
  ratio=$(awk -v s="$best_seal" -v o="$best_ossl" 'BEGIN { printf "%.2f", s / o }')
  printf '%10s %10s %10s %10s %8s\n' "$size" "$best_ossl" "$best_seal" "$best_open" "$ratio"
done
