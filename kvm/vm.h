// A KVM virtual machine: guest memory slots (also as GuestMemoryMap, the seam a device model
// maps BARs through), the in-kernel irqchip, GSI routing and irqfds (the msix::IrqRouting a
// RouteTable commits through), and its vCPUs.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "vfiokit/base/unique_fd.h"
#include "vfiokit/kvm/dirty_bitmap.h"
#include "vfiokit/kvm/dirty_ring.h"
#include "vfiokit/msix/routing.h"

namespace vfiokit::kvm {

class KvmSystem;
class Vcpu;

struct MemorySlot {
  std::uint32_t slot = 0;
  std::uint64_t guest_address = 0;
  std::uint64_t size = 0;
  std::uintptr_t host_address = 0;
  std::uint32_t flags = 0;  // KVM_MEM_READONLY, KVM_MEM_LOG_DIRTY_PAGES
};

// How many slot numbers x86 KVM takes (KVM_USER_MEM_SLOTS); Vm asks KVM_CAP_NR_MEMSLOTS.
inline constexpr std::uint32_t kDefaultMemorySlots = 32764;

// The slots of one VM, checked before KVM sees them: page-aligned, non-empty, no overlap in
// guest-physical space, slot numbers unique and below the limit. Pure.
class MemorySlotTable {
 public:
  explicit MemorySlotTable(std::uint32_t slot_limit = kDefaultMemorySlots)
      : slot_limit_(slot_limit) {}

  void add(const MemorySlot& slot);  // throws Error naming the conflicting slot
  void remove(std::uint32_t slot);   // throws Error if there is no such slot
  // The lowest number not in use: numbers given back are used again, so a guest that moves a
  // BAR over and over never runs out. Throws Error when all of them are in use.
  [[nodiscard]] std::uint32_t free_slot() const;
  [[nodiscard]] const MemorySlot* find(std::uint32_t slot) const;
  // The slot holding guest-physical `address`, if any.
  [[nodiscard]] const MemorySlot* containing(std::uint64_t address) const;
  [[nodiscard]] std::size_t size() const noexcept { return slots_.size(); }

 private:
  std::uint32_t slot_limit_;
  std::map<std::uint32_t, MemorySlot> slots_;
};

// Guest-physical memory that a device model maps and unmaps while the guest runs (the BARs of a
// passed-through device, which the guest may move). Vm implements it; tests use a fake, so the
// model runs without /dev/kvm.
class GuestMemoryMap {
 public:
  virtual ~GuestMemoryMap() = default;
  // Kernel contract: `host` stays mapped in this process until unmap_memory(slot). Returns the
  // slot. Throws Error when the place is refused (an overlap, no free slot, KVM's refusal).
  virtual std::uint32_t map_memory(std::uint64_t guest_address, std::span<std::uint8_t> host) = 0;
  virtual void unmap_memory(std::uint32_t slot) = 0;
};

class Vm final : public msix::IrqRouting, public GuestMemoryMap {
 public:
  Vm(UniqueFd fd, const KvmSystem& system);

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

  // Kernel contract: [host, host + size) stays mapped in this process while the slot exists.
  void add_memory(std::uint32_t slot, std::uint64_t guest_address, std::span<std::uint8_t> host,
                  std::uint32_t flags = 0);
  void remove_memory(std::uint32_t slot);
  [[nodiscard]] const MemorySlotTable& memory() const noexcept { return slots_; }
  // add_memory() in the lowest free slot (MemorySlotTable::free_slot).
  std::uint32_t map_memory(std::uint64_t guest_address, std::span<std::uint8_t> host) override;
  void unmap_memory(std::uint32_t slot) override { remove_memory(slot); }

  // The in-kernel interrupt controller; needed for irqfds and MSI routes. x86: PIC, IOAPIC and
  // a LAPIC per vCPU. arm64: a vGICv3 and its ITS at kvm/gic.h's addresses (MSIs then need a
  // device ID: kvm::its_msi). Before any vCPU exists on x86; on arm64 either way, then
  // finish_irqchip() once all vCPUs exist.
  void create_irqchip();
  // arm64: KVM_DEV_ARM_VGIC_CTRL_INIT on the vGIC and the ITS, after the last create_vcpu() (the
  // redistributors are per vCPU, and no vCPU can be added after it) and before the first run.
  // Nothing to do on x86, or without an irqchip.
  void finish_irqchip();
  [[nodiscard]] bool has_irqchip() const noexcept { return irqchip_; }

  void set_gsi_routing(std::span<const msix::RouteEntry> entries) override;
  void assign_irqfd(int eventfd, std::uint32_t gsi) override;
  void deassign_irqfd(int eventfd, std::uint32_t gsi) override;
  void signal_msi(const msix::MsiMessage& message) override;

  // ---- INTx (issue 14): the level-triggered irqfd ----
  // KVM_IRQFD with KVM_IRQFD_FLAG_RESAMPLE and `resamplefd`; needs create_irqchip() and a GSI
  // routed to an IOAPIC pin (msix::default_irqchip_routes keeps 16..23 there).
  void assign_resample_irqfd(int eventfd, int resamplefd, std::uint32_t gsi) override;
  // ---- end INTx ----

  [[nodiscard]] Vcpu create_vcpu(std::uint32_t id);

  // ---- Dirty tracking: the kernel's side of kvm/dirty_tracker.h (its policy lives there) ----
  // KVM_CHECK_EXTENSION on this VM (what this VM, not just the host, offers): 0 when absent.
  [[nodiscard]] int check_extension(unsigned long capability) const;
  // KVM_ENABLE_CAP with args[0] = `argument`; Error names the capability.
  void enable_capability(std::uint32_t capability, std::uint64_t argument);
  // The dirty ring, `entries` kvm_dirty_gfn per vCPU (a power of two; KVM takes at least a
  // page and at most what check_extension(capability) says, in bytes). Only before any vCPU
  // exists: KVM sizes each vCPU's ring when it creates the vCPU. Throws Error otherwise.
  void enable_dirty_ring(RingOrdering ordering, std::uint32_t entries);
  // 0 without a ring.
  [[nodiscard]] std::uint32_t dirty_ring_entries() const noexcept { return dirty_ring_entries_; }
  [[nodiscard]] RingOrdering dirty_ring_ordering() const noexcept { return dirty_ring_ordering_; }
  // KVM_RESET_DIRTY_RINGS: every entry marked harvested is freed and its page write-protected
  // again. Returns how many.
  std::uint32_t reset_dirty_rings();
  // KVM_GET_DIRTY_LOG: `bitmap` gets one bit per page of `slot` (dirty_bitmap_words of it).
  // The slot is the caller's copy: this reads no table another thread may be changing.
  void get_dirty_log(const MemorySlot& slot, std::span<std::uint64_t> bitmap);
  // KVM_CLEAR_DIRTY_LOG (with manual protect): the set bits of `bitmap` (bit 0 = first_page)
  // cleared and their pages write-protected again.
  void clear_dirty_log(const MemorySlot& slot, const ClearRange& range,
                       std::span<const std::uint64_t> bitmap);
  // ---- end of dirty tracking ----

 private:
  UniqueFd fd_;
  // arm64's vGICv3 and ITS devices (create_irqchip): declared after fd_, so they close first;
  // each holds a reference to the VM, which KVM frees with the last one.
  UniqueFd gic_;
  UniqueFd its_;
  std::size_t vcpu_mmap_size_;
  // What every vCPU is given (KVM_SET_CPUID2) before it runs. Without it KVM's local APIC
  // accepts no timer mode: a periodic LAPIC timer silently became one-shot, and a payload's
  // tick, which times out its every wait, stopped after the first. (x86: arm64 has no CPUID.)
#if defined(__x86_64__)
  std::vector<kvm_cpuid_entry2> cpuid_;
#endif
  MemorySlotTable slots_;
  bool irqchip_ = false;
  // Dirty tracking: the ring must be enabled before the first vCPU, so the vCPUs are counted.
  std::uint32_t vcpus_created_ = 0;
  std::uint32_t dirty_ring_entries_ = 0;
  RingOrdering dirty_ring_ordering_ = RingOrdering::acquire_release;
};

}  // namespace vfiokit::kvm
