// Where an interrupt stopped, for a guest that waits in vain: what the device raised on the host
// (vfio-pci's handler counts in /proc/interrupts), what KVM injected into the vCPU and how often
// the vCPU woke (KVM's binary statistics), where the vCPU is, and what its local APIC holds
// pending. Counted from the guest's last mailbox write to the timeout. Pure: the counting is
// the caller's; this decides what the numbers mean. The decisive case is an interrupt pending
// in the APIC that the halted vCPU could take: KVM has it and did not wake the vCPU.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "vfiokit/kvm/vcpu.h"

namespace vfiokit::vmm {

struct InterruptCounts {
  std::map<std::string, std::uint64_t> host;  // "vfio-msix[0](BDF)" -> count
  // KVM's vCPU statistics; nullopt where the kernel has none (before Linux 5.14).
  std::optional<std::uint64_t> injections;    // irq_injections
  std::optional<std::uint64_t> halt_wakeups;  // halt_wakeup
};

enum class HangCause {
  running,          // the vCPU is not halted: the payload is busy, not waiting
  halted_for_good,  // halted with interrupts off: nothing can wake it (a payload bug)
  lost_wakeup,      // the local APIC holds an interrupt the halted vCPU could take, and KVM did
                    // not wake it: the host's KVM
  device_silent,    // the device raised nothing on the host while the guest waited
  not_injected,     // the device raised it on the host; KVM injected nothing, holds nothing
  unknown,          // the kernel gives too little to tell
};

std::string_view to_string(HangCause cause) noexcept;

struct HangReport {
  HangCause cause = HangCause::unknown;
  std::map<std::string, std::uint64_t> host_raised;  // per handler, while the guest waited
  std::optional<std::uint64_t> injected;
  std::optional<std::uint64_t> woke;
  kvm::VcpuState vcpu;
  // "the vCPU halted at 0x101234 with interrupts enabled; while it waited the device raised 1
  // interrupt on the host (vfio-msix[0](0000:00:04.0) 1), KVM injected 1 and the vCPU woke 0
  // times: the wake-up was lost in the host's KVM"
  [[nodiscard]] std::string describe() const;
};

// `before`: at the guest's last mailbox write; `after`: at the timeout.
HangReport diagnose_hang(const InterruptCounts& before, const InterruptCounts& after,
                         const kvm::VcpuState& vcpu);

}  // namespace vfiokit::vmm
