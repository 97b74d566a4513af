#!/usr/bin/env bash
# Installs what rmig needs to build, test and demo, from Debian 12 packages
# only. Idempotent: installs only what is missing, and does nothing when all
# is there. Usage: scripts/deps.sh
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config binutils        # toolchain
  clang libclang-rt-14-dev                          # libFuzzer targets (scripts/fuzz.sh)
  libgtest-dev libgmock-dev libbenchmark-dev        # tests, micro-benchmarks
  nlohmann-json3-dev libxxhash-dev                  # QMP/control JSON, frame checksums
  libhwloc-dev liblz4-dev libzstd-dev               # NUMA placement, page compression
  libhwloc-plugins                                  # hwloc with its optional plugins (tests also run without)
  qemu-system-x86                                   # the real QEMU we migrate
  iperf3 jq procps iproute2                         # baselines and test plumbing
  iputils-ping                                      # RTT through the WAN emulator (tests/lab/wan_link_test)
  libibverbs-dev librdmacm-dev rdma-core            # the rdma transport
  ibverbs-utils rdmacm-utils perftest               # RDMA tools and the ib_write_bw baseline
  libdpdk-dev dpdk                                  # the dpdk transport, dpdk-testpmd baseline
  dpdk-dev                                          # dpdk-testpmd (the raw memif baseline)
  libssl-dev openssl                                # TLS 1.3 / PSK auth, AES-256-GCM frames
  gnuplot-nox                                       # per-round plots (bench/scripts/memory_e2e.sh), rmig report --plot
  libxml2-utils                                     # xmllint: rmig report's SVG is well-formed (tests/cli)
  prometheus                                        # promtool: checks rmig's /metrics scrapes (docs/metrics.md)
  man-db groff-base dpkg-dev file                   # man pages, the .deb (cpack, dpkg-shlibdeps; tests/man, tests/packaging)
  linux-image-amd64 busybox-static kmod cpio xz-utils  # the Soft-RoCE test VM (tests/rdma/vm)
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients socat  # two libvirtd hosts (libvirtd is in libvirt-daemon), virsh migrate via a relay (lab/libvirt)
  qemu-utils                                        # qemu-img: the libvirt guest's qcow2 disk (lab/libvirt)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
