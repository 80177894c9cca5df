#!/usr/bin/env bash
# ctest's hil.boot: persists the rig's nvme against the rig's captured sysfs
# (tests/fixtures/sysfs/rig), makes a Debian initramfs from it with boot/'s hook
# (tools/rig/debian-initramfs, nvme as the host driver it loads), and boots the rig with that
# initramfs carried in to run the Boot.* rig tests (tests/hil/boot_test.cpp).
#   tests/hil/boot_replay.sh BUILD_DIR [TIMEOUT]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=$(cd "${1:?usage: boot_replay.sh BUILD_DIR [TIMEOUT]}" && pwd)
timeout=${2:-300}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp -r "$repo/tests/fixtures/sysfs/rig" "$work/host"
nvme=$(grep -l '^0x0010$' "$work"/host/sys/bus/pci/devices/*/device | head -n 1 | xargs dirname |
  xargs basename)
"$build_dir/bin/vfiokit" --host-root "$work/host" persist "$nvme" >/dev/null
"$repo/tools/rig/debian-initramfs" "$build_dir" "$work/host/etc" "$work/initramfs.cpio.gz" nvme
"$repo/tools/rig/run" --build-dir "$build_dir" --layer "$work/initramfs.cpio.gz" \
  --timeout "$timeout" -- vfiokit_hil_tests --gtest_filter='Boot.*' --gtest_color=no
