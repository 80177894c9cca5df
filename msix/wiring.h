// A VFIO device's MSI-X (or MSI) vectors wired into a VM, so device interrupts reach the guest
// without a trip through user space: each vector's eventfd goes both to VFIO_DEVICE_SET_IRQS
// (the device signals it) and to KVM_IRQFD (KVM injects on it), on a GSI whose route carries
// the guest's MSI address and data.
//
// Masking a vector deassigns its irqfd: the device keeps signalling the eventfd, whose counter
// holds the interrupt, and KVM polls the eventfd when the irqfd is assigned again, so an
// interrupt raised while masked is delivered on unmask, once, never lost.
#pragma once

#include <cstdint>
#include <vector>

#include "vfiokit/msix/routing.h"
#include "vfiokit/msix/vectors.h"

namespace vfiokit::msix {

class MsixWiring {
 public:
  // `device` and `routes` must outlive this. Nothing is wired until wire().
  MsixWiring(const vfio::DeviceAccess& device, std::uint32_t irq_index, RouteTable& routes);
  // Deassigns every irqfd, disables the device's vectors, then (members) closes the eventfds;
  // the routes are removed in one commit and the GSIs given back.
  ~MsixWiring();
  MsixWiring(const MsixWiring&) = delete;
  MsixWiring& operator=(const MsixWiring&) = delete;

  // Wires vectors 0..messages.size()-1 to `messages`: GSIs allocated, all routes committed in
  // one KVM_SET_GSI_ROUTING, eventfds given to VFIO and to KVM_IRQFD, except for the vectors
  // `masked` says start masked (an MSI-X table fresh from reset masks them all).
  void wire(const std::vector<MsiMessage>& messages, const std::vector<bool>& masked = {});
  // Wires vectors count()..messages.size()-1 as well, the ones wired keeping their GSIs,
  // eventfds and irqfds. Where the kernel can add vectors to an enabled MSI-X index (no
  // VFIO_IRQ_INFO_NORESIZE: Linux 6.5+), VFIO is given only the new ones, with no gap.
  // Otherwise the index goes off and on again with all of them (InterruptVectors::grow), and
  // an interrupt the device raised in that gap cannot be seen: every vector that was live
  // before is then fired once through VFIO's loopback, so an event in the gap is delivered (at
  // worst as a spurious interrupt, which MSI-X drivers tolerate) rather than lost. Returns
  // whether there was a gap.
  bool grow(const std::vector<MsiMessage>& messages, const std::vector<bool>& masked = {});
  // Points a wired vector at a new message (the guest reprogrammed its MSI-X table entry).
  void retarget(std::uint32_t vector, const MsiMessage& message);
  void mask(std::uint32_t vector);
  void unmask(std::uint32_t vector);
  [[nodiscard]] bool masked(std::uint32_t vector) const;
  // Masked and fired since: what the MSI-X Pending Bit Array shows. The eventfd keeps the
  // count while no irqfd drains it; unmask() delivers it (KVM_IRQFD injects a signalled fd).
  [[nodiscard]] bool pending(std::uint32_t vector) const;

  [[nodiscard]] std::uint32_t count() const noexcept {
    return static_cast<std::uint32_t>(gsis_.size());
  }
  [[nodiscard]] std::uint32_t gsi(std::uint32_t vector) const;
  // The vectors themselves: trigger(v) fires one with the kernel's loopback.
  [[nodiscard]] InterruptVectors& vectors() noexcept { return vectors_; }
  // VFIO_PCI_MSI_IRQ_INDEX or VFIO_PCI_MSIX_IRQ_INDEX.
  [[nodiscard]] std::uint32_t irq_index() const noexcept { return vectors_.info().index; }

 private:
  void check(std::uint32_t vector) const;
  void teardown() noexcept;
  // GSIs taken for vectors that were never wired: their routes removed, the GSIs released.
  void give_back(const std::vector<std::uint32_t>& gsis) noexcept;

  RouteTable* routes_;
  InterruptVectors vectors_;
  std::vector<std::uint32_t> gsis_;
  std::vector<bool> masked_;
};

}  // namespace vfiokit::msix
