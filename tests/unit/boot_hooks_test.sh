#!/bin/bash
# The initramfs-tools hook and the dracut module (boot/), run against stubs of the functions
# their generators provide, in a temporary DESTDIR: what each copies into the initramfs when
# devices are persisted, and that each adds nothing when none is.
#   boot_hooks_test.sh SOURCE_DIR
# shellcheck disable=SC2317  # the stubs are called by the scripts under test
set -euo pipefail
source_dir=$(cd "${1:?usage: boot_hooks_test.sh SOURCE_DIR}" && pwd)
hook=$source_dir/boot/share/initramfs-tools/hooks/vfiokit
module=$source_dir/boot/lib/dracut/modules.d/90vfiokit/module-setup.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

expect_file() {  # expect_file DESTDIR PATH: PATH was copied, byte for byte, from the fixture
	[[ -f $1$2 ]] || { fail "$2 not in the initramfs"; return; }
	cmp -s "$1$2" "$work/etc${2#/etc}" || fail "$2 differs from the host's"
}

expect_modules() {  # expect_modules FILE WORDS...: FILE lists exactly these, one a line
	local want
	want=$(printf '%s\n' "${@:2}" | sort)
	[[ $(sort "$1") == "$want" ]] || fail "modules: got [$(sort "$1" | tr '\n' ' ')], want [${*:2}]"
}

# A host /etc with two persisted devices, their softdeps, and someone else's rule.
mkdir -p "$work/etc/udev/rules.d" "$work/etc/modprobe.d"
for bdf in 0000:01:00.0 0000:01:00.1; do
	printf '# vfiokit-persist bdf=%s id=10de:2204 host-driver=nouveau\nACTION=="add"\n' "$bdf" \
		>"$work/etc/udev/rules.d/61-vfiokit-$bdf.rules"
done
echo 'softdep nouveau pre: vfio-pci' >"$work/etc/modprobe.d/vfiokit.conf"
echo '# not vfiokit' >"$work/etc/udev/rules.d/70-other.rules"
mkdir -p "$work/empty-etc"

# --- initramfs-tools: hook-functions stubs, as /usr/share/initramfs-tools/hook-functions
# provides them (copy_file TYPE SRC [DST] returns 1 when DST is there already).
cat >"$work/hook-functions" <<'STUB'
copy_file() {
	local target="${3:-$2}"
	[ -f "$2" ] || return 2
	[ -e "$DESTDIR$target" ] && return 1
	mkdir -p "$(dirname "$DESTDIR$target")"
	cp "$2" "$DESTDIR$target"
}
manual_add_modules() {
	for m in "$@"; do echo "$m" >>"$MODULES_LIST"; done
}
STUB
mkdir -p "$work/bin"
# modinfo -k VERSION MODULE succeeds for the modules STUB_KERNEL_MODULES names.
cat >"$work/bin/modinfo" <<'STUB'
#!/bin/sh
for m in $STUB_KERNEL_MODULES; do [ "$m" = "$3" ] && exit 0; done
exit 1
STUB
chmod +x "$work/bin/modinfo"
sed "s|^\. /usr/share/initramfs-tools/hook-functions$|. $work/hook-functions|" "$hook" >"$work/hook"
grep -q "^\. $work/hook-functions$" "$work/hook" || fail "the hook no longer sources hook-functions"

run_hook() {  # run_hook NAME ETC KERNEL_MODULES
	export DESTDIR=$work/$1 MODULES_LIST=$work/$1.modules VFIOKIT_ETC=$2 version=6.12.0-test
	mkdir -p "$DESTDIR"
	: >"$MODULES_LIST"
	PATH=$work/bin:$PATH STUB_KERNEL_MODULES=$3 sh "$work/hook" ||
		fail "the hook exited $? ($1)"
}

[[ $(sh "$work/hook" prereqs) == udev ]] || fail "the hook's prereqs are not 'udev'"

run_hook it-6.12 "$work/etc" "vfio vfio_pci vfio_pci_core vfio_iommu_type1"
expect_file "$work/it-6.12" /etc/udev/rules.d/61-vfiokit-0000:01:00.0.rules
expect_file "$work/it-6.12" /etc/udev/rules.d/61-vfiokit-0000:01:00.1.rules
expect_file "$work/it-6.12" /etc/modprobe.d/vfiokit.conf
[[ -e $work/it-6.12/etc/udev/rules.d/70-other.rules ]] && fail "the hook copied another rule"
expect_modules "$work/it-6.12.modules" vfio vfio_iommu_type1 vfio_pci vfio_pci_core

# A kernel before 5.16 has no vfio_pci_core module.
run_hook it-5.10 "$work/etc" "vfio vfio_pci vfio_iommu_type1"
expect_modules "$work/it-5.10.modules" vfio vfio_iommu_type1 vfio_pci

# Nothing persisted: nothing copied, no module added.
run_hook it-none "$work/empty-etc" "vfio vfio_pci vfio_pci_core vfio_iommu_type1"
[[ -z $(find "$work/it-none" -type f) ]] || fail "the hook copied files with nothing persisted"
expect_modules "$work/it-none.modules"

# --- dracut: module-setup.sh sourced by bash with stubs of dracut-init.sh's functions.
run_dracut() {  # run_dracut NAME ETC: prints check's status; installs when it is 0
	(
		export DESTDIR=$work/$1 VFIOKIT_ETC=$2
		modules_list=$work/$1.modules
		mkdir -p "$DESTDIR"
		: >"$modules_list"
		hostonly=yes
		inst_simple() {
			[[ -f $1 ]] || return 1
			mkdir -p "$(dirname "$DESTDIR${2:-$1}")"
			cp "$1" "$DESTDIR${2:-$1}"
		}
		instmods() {  # records each module with the hostonly it was asked under
			for m in "$@"; do echo "$m hostonly=[$hostonly]" >>"$modules_list"; done
		}
		# shellcheck source=/dev/null
		. "$module"
		status=0
		check || status=$?
		echo "$status"
		[[ $status -eq 0 ]] || exit 0
		[[ $(depends) == udev-rules ]] || echo "depends: $(depends)" >&2
		installkernel
		install
	)
}

[[ $(run_dracut dracut "$work/etc") == 0 ]] || fail "dracut check() refused with devices persisted"
expect_file "$work/dracut" /etc/udev/rules.d/61-vfiokit-0000:01:00.0.rules
expect_file "$work/dracut" /etc/udev/rules.d/61-vfiokit-0000:01:00.1.rules
expect_file "$work/dracut" /etc/modprobe.d/vfiokit.conf
[[ -e $work/dracut/etc/udev/rules.d/70-other.rules ]] && fail "dracut copied another rule"
expect_modules "$work/dracut.modules" "vfio hostonly=[]" "vfio_iommu_type1 hostonly=[]" \
	"vfio_pci hostonly=[]" "vfio_pci_core hostonly=[]"

# Nothing persisted: check() answers 255 (only when asked for by name) and installs nothing.
[[ $(run_dracut dracut-none "$work/empty-etc") == 255 ]] ||
	fail "dracut check() did not answer 255 with nothing persisted"
[[ -z $(find "$work/dracut-none" -type f) ]] || fail "dracut copied files with nothing persisted"

if ((failures > 0)); then
	echo "boot_hooks_test: $failures failures" >&2
	exit 1
fi
echo "boot_hooks_test: the initramfs-tools hook and the dracut module copy what they should"
