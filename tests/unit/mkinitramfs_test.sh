#!/bin/bash
# A real initramfs made by Debian's mkinitramfs with boot/'s hook, listed with lsinitramfs: it
# holds vfiokit's udev rules and softdeps, and (given a kernel's modules) vfio-pci's modules.
# tools/rig/mkinitramfs-isolated gives mkinitramfs the kernel in a private mount namespace: the
# host is not touched. Skips (77) where initramfs-tools is not installed or there is no
# namespace to do that in (not root).
#   mkinitramfs_test.sh SOURCE_DIR [KERNEL_STAGES]
# KERNEL_STAGES is where tools/rig/kernel stages kernels (BUILD/rig/kernel/VERSION, each with
# config and modules/lib/modules/VERSION): the newest is used. Without one, a kernel with no
# modules stands in and only the files are checked.
set -euo pipefail
source_dir=$(cd "${1:?usage: mkinitramfs_test.sh SOURCE_DIR [KERNEL_STAGES]}" && pwd)
stage=
if [[ -d ${2:-} ]]; then
	stage=$(find "$2" -mindepth 1 -maxdepth 1 -type d | sort -V | tail -n 1)
fi

skip() {
	echo "SKIPPED: $*"
	exit 77
}
if ! command -v mkinitramfs >/dev/null || ! command -v lsinitramfs >/dev/null; then
	skip "initramfs-tools is not installed (tools/install-deps installs it)"
fi
if [[ $(id -u) -ne 0 ]] || ! unshare -m true 2>/dev/null; then
	skip "no private mount namespace (needs root) to give mkinitramfs a kernel in"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The host's initramfs-tools configuration, with only the modules asked for (MODULES=list) and
# vfiokit's hook beside the system's hooks.
mkdir -p "$work/conf/hooks" "$work/etc/udev/rules.d" "$work/etc/modprobe.d"
cp -r /etc/initramfs-tools/. "$work/conf/"
sed -i 's/^MODULES=.*/MODULES=list/; s/^COMPRESS=.*/COMPRESS=gzip/' "$work/conf/initramfs.conf"
cp "$source_dir/boot/share/initramfs-tools/hooks/vfiokit" "$work/conf/hooks/"
rule=61-vfiokit-0000:01:00.0.rules
printf '# vfiokit-persist bdf=0000:01:00.0 id=1b36:0010 host-driver=nvme\n' \
	>"$work/etc/udev/rules.d/$rule"
echo 'softdep nvme pre: vfio-pci' >"$work/etc/modprobe.d/vfiokit.conf"

modules=()
if [[ -n $stage && -f $stage/config && -d $stage/modules/lib/modules ]]; then
	version=$(basename "$stage")
	modules=(kernel/drivers/vfio/vfio.ko kernel/drivers/vfio/vfio_iommu_type1.ko
		kernel/drivers/vfio/pci/vfio-pci.ko)
	[[ -n $(find "$stage/modules" -name 'vfio-pci-core.ko*') ]] &&
		modules+=(kernel/drivers/vfio/pci/vfio-pci-core.ko)
else
	version=0.0.0-vfiokit-test
	echo "no staged kernel given: the modules are not checked (tools/rig/kernel stages one)"
	stage=
fi

# The kernel in place in a private mount namespace, then mkinitramfs; the hook reads the
# test's /etc.
"$source_dir/tools/rig/mkinitramfs-isolated" "$work/conf" "$work/etc" "$version" "$stage" \
	"$work/initrd.img"

listing=$(lsinitramfs "$work/initrd.img")
failures=0
for path in "etc/udev/rules.d/$rule" etc/modprobe.d/vfiokit.conf \
	"${modules[@]/#/usr/lib/modules/$version/}"; do
	grep -qxF "$path" <<<"$listing" || {
		echo "FAIL: $path is not in the initramfs" >&2
		failures=$((failures + 1))
	}
done
# The softdep is the host's file, unchanged (mkinitramfs copies modprobe.d too: either way).
unpacked=$work/unpacked
mkdir "$unpacked"
(cd "$unpacked" && unmkinitramfs "$work/initrd.img" . >/dev/null 2>&1) || true
root=$unpacked
[[ -d $unpacked/main ]] && root=$unpacked/main
cmp -s "$root/etc/modprobe.d/vfiokit.conf" "$work/etc/modprobe.d/vfiokit.conf" || {
	echo "FAIL: the initramfs's vfiokit.conf is not the host's" >&2
	failures=$((failures + 1))
}
((failures == 0)) || exit 1
what="vfiokit's rules and softdeps"
[[ -n $stage ]] && what+=" and vfio-pci's modules"
echo "mkinitramfs_test: the initramfs holds $what"
