// arm64's in-kernel interrupt controller for a vfiokit VM: a vGICv3 (distributor, one
// redistributor per vCPU) and an ITS that turns MSIs into LPIs, at fixed guest-physical
// addresses, the ones QEMU's `virt` machine uses, so a guest written for it finds them where it
// expects. Guest RAM stays below kGicDistributor (ram_below_gic). Layout facts only: the
// KVM device calls are Vm::create_irqchip's.
#pragma once

#include <cstdint>

#include "vfiokit/msix/msi.h"

namespace vfiokit::kvm {

inline constexpr std::uint64_t kGicDistributor = 0x08000000;  // GICD: 64 KiB
// GITS: 128 KiB, the control frame and the translater frame.
inline constexpr std::uint64_t kGicIts = 0x08080000;
// GICR: 128 KiB per vCPU, in vCPU id order.
inline constexpr std::uint64_t kGicRedistributors = 0x080a0000;
// GITS_TRANSLATER, the ITS's doorbell: a device's MSI writes its event ID here.
inline constexpr std::uint64_t kGicItsTranslater = kGicIts + 0x10040;

// The MSI a device with requester ID `device_id` sends for `event_id` through the VM's ITS:
// address GITS_TRANSLATER, data the event ID. Which LPI it becomes is the guest's choice (its
// MAPTI for that device and event). Pure.
msix::MsiMessage its_msi(std::uint32_t device_id, std::uint32_t event_id);

// Whether guest RAM [0, size) stays clear of the GIC's frames. Pure.
bool ram_below_gic(std::uint64_t size) noexcept;

}  // namespace vfiokit::kvm
