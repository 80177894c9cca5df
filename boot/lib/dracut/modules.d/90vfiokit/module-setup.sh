#!/bin/bash
# dracut module: carries `vfiokit persist`'s udev rules, its softdeps and the vfio-pci modules
# into the initramfs, so that a persisted device whose host driver loads from the initramfs is
# claimed for vfio-pci there too. The same job as share/initramfs-tools/hooks/vfiokit.

# VFIOKIT_ETC lets the tests point the module at a fixture; on a host it is /etc.
vfiokit_etc() {
    echo "${VFIOKIT_ETC:-/etc}"
}

vfiokit_rules() {
    local rule
    for rule in "$(vfiokit_etc)"/udev/rules.d/61-vfiokit-*.rules; do
        [[ -f $rule ]] && echo "$rule"
    done
}

# Included whenever a device is persisted; otherwise only when asked for (255).
check() {
    [[ -n $(vfiokit_rules) ]] || return 255
    return 0
}

depends() {
    echo udev-rules
    return 0
}

installkernel() {
    # hostonly='': the modules are needed although no device uses vfio-pci while dracut runs.
    hostonly='' instmods vfio vfio_iommu_type1 vfio_pci
    # vfio_pci_core is a module of its own from Linux 5.16 on; older kernels have none.
    hostonly='' instmods vfio_pci_core || :
}

install() {
    local rule etc
    etc=$(vfiokit_etc)
    for rule in $(vfiokit_rules); do
        inst_simple "$rule" "/etc/udev/rules.d/${rule##*/}"
    done
    if [[ -f $etc/modprobe.d/vfiokit.conf ]]; then
        inst_simple "$etc/modprobe.d/vfiokit.conf" /etc/modprobe.d/vfiokit.conf
    fi
}
