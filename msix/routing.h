// Interrupt routing of a VM: which GSI carries which MSI message, and which eventfd triggers
// which GSI. KVM replaces its whole routing table on every KVM_SET_GSI_ROUTING, so the table
// here collects a change set and commits it in one call, never one call per vector.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "vfiokit/msix/msi.h"

namespace vfiokit::msix {

// KVM accepts at most this many routes per VM (KVM_MAX_IRQ_ROUTES).
inline constexpr std::uint32_t kMaxRoutes = 4096;
// GSIs 0..23 belong to the in-kernel PIC and IOAPIC pins.
inline constexpr std::uint32_t kFirstMsiGsi = 24;

struct IrqchipPin {
  std::uint32_t chip = 0;  // 0 PIC master, 1 PIC slave, 2 IOAPIC
  std::uint32_t pin = 0;
  bool operator==(const IrqchipPin&) const = default;
};

struct RouteEntry {
  std::uint32_t gsi = 0;
  std::variant<MsiMessage, IrqchipPin> target;
  bool operator==(const RouteEntry&) const = default;
};

// What routing needs from a VM; kvm::Vm implements it (msix sits below kvm).
class IrqRouting {
 public:
  virtual ~IrqRouting() = default;
  // Replaces the VM's whole routing table with `entries`.
  virtual void set_gsi_routing(std::span<const RouteEntry> entries) = 0;
  virtual void assign_irqfd(int eventfd, std::uint32_t gsi) = 0;
  virtual void deassign_irqfd(int eventfd, std::uint32_t gsi) = 0;
  // A level-triggered irqfd (KVM_IRQFD_FLAG_RESAMPLE), for INTx: a signal on `eventfd` asserts
  // `gsi` (an irqchip pin) until the guest ends the interrupt (EOI), when KVM deasserts it and
  // signals `resamplefd`. deassign_irqfd() removes it. A sink without an in-kernel irqchip
  // cannot: the default throws Error.
  virtual void assign_resample_irqfd(int eventfd, int resamplefd, std::uint32_t gsi);
  // Injects one MSI directly (KVM_SIGNAL_MSI), without a route.
  virtual void signal_msi(const MsiMessage& message) = 0;
};

// The routes KVM installs by itself with an in-kernel irqchip: GSIs 0..15 on the PIC pins and
// the IOAPIC pins, 16..23 on the IOAPIC. A committed table keeps them, so legacy interrupts
// still work after MSI routes are added.
std::vector<RouteEntry> default_irqchip_routes();

// Free GSIs from kFirstMsiGsi up to kMaxRoutes. Pure.
class GsiAllocator {
 public:
  explicit GsiAllocator(std::uint32_t first = kFirstMsiGsi, std::uint32_t limit = kMaxRoutes);
  // `count` GSIs (not necessarily contiguous); throws Error, allocating nothing, if too few are
  // free.
  std::vector<std::uint32_t> allocate(std::uint32_t count);
  // Throws Error, releasing nothing, if any GSI in the list is not allocated (or is repeated).
  void release(std::span<const std::uint32_t> gsis);
  [[nodiscard]] std::uint32_t available() const noexcept;

 private:
  std::uint32_t first_;
  std::uint32_t limit_;
  std::vector<bool> used_;
};

class RouteTable {
 public:
  // With `keep_irqchip_routes`, the default PIC/IOAPIC routes stay in every committed table.
  explicit RouteTable(IrqRouting& sink, bool keep_irqchip_routes = true);

  [[nodiscard]] IrqRouting& sink() const noexcept { return *sink_; }
  GsiAllocator& gsis() noexcept { return gsis_; }

  // Staged changes take effect at commit(). Throws Error, changing nothing, for a GSI KVM
  // cannot route (kMaxRoutes and up, or an irqchip pin while its routes are kept) and for a new
  // route that would make the table longer than the kMaxRoutes entries KVM accepts.
  void stage(std::uint32_t gsi, const MsiMessage& message);
  void unstage(std::uint32_t gsi);
  // One KVM_SET_GSI_ROUTING with the whole table; a no-op when nothing changed.
  void commit();
  [[nodiscard]] bool dirty() const noexcept { return dirty_; }
  [[nodiscard]] std::optional<MsiMessage> route(std::uint32_t gsi) const;
  // The full table as it would be committed, sorted by GSI.
  [[nodiscard]] std::vector<RouteEntry> entries() const;
  [[nodiscard]] std::size_t commits() const noexcept { return commits_; }

 private:
  IrqRouting* sink_;
  bool keep_irqchip_routes_;
  GsiAllocator gsis_;
  std::map<std::uint32_t, MsiMessage> msi_routes_;
  bool dirty_ = false;
  std::size_t commits_ = 0;
};

}  // namespace vfiokit::msix
