#!/usr/bin/env bash
# Runs a command inside a throwaway QEMU VM with Soft-RoCE (rxe0, 10.11.12.1).
# usage: scripts/rdma-vm.sh [--timeout S] [--smp N] [--mem M] [--workdir DIR] [--keep] [--verbose] -- COMMAND [ARGS...]
#   e.g. scripts/rdma-vm.sh -- tests/rdma/vm/smoke.sh
#        scripts/rdma-vm.sh -- build/tests/wire/wire_frame_test --gtest_brief=1
# Exit: COMMAND's code; 124 timeout; 125 VM or Soft-RoCE setup failed. See tests/rdma/vm/README.md.
exec "$(dirname "$0")/../tests/rdma/vm/run-in-vm.sh" "$@"
