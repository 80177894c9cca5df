#include "vfiokit/msix/routing.h"

#include <algorithm>

#include "vfiokit/base/error.h"

namespace vfiokit::msix {

void IrqRouting::assign_resample_irqfd(int, int, std::uint32_t gsi) {
  throw Error("route", "no level-triggered irqfd for GSI " + std::to_string(gsi) +
                           ": this VM has no in-kernel irqchip to resample");
}

std::vector<RouteEntry> default_irqchip_routes() {
  std::vector<RouteEntry> routes;
  // The same table KVM sets up in kvm_setup_default_irq_routing().
  for (std::uint32_t gsi = 0; gsi < 16; ++gsi) {
    routes.push_back({gsi, IrqchipPin{2, gsi}});
    routes.push_back({gsi, IrqchipPin{gsi < 8 ? 0u : 1u, gsi % 8}});
  }
  for (std::uint32_t gsi = 16; gsi < 24; ++gsi) routes.push_back({gsi, IrqchipPin{2, gsi}});
  return routes;
}

GsiAllocator::GsiAllocator(std::uint32_t first, std::uint32_t limit)
    : first_(first), limit_(limit), used_(limit > first ? limit - first : 0, false) {}

std::vector<std::uint32_t> GsiAllocator::allocate(std::uint32_t count) {
  if (count > available()) {
    throw Error("allocate GSIs", "asked for " + std::to_string(count) + ", " +
                                     std::to_string(available()) + " of " +
                                     std::to_string(limit_ - first_) + " are free")
        .hint("KVM allows at most " + std::to_string(kMaxRoutes) +
              " routes per VM; release vectors that are no longer wired");
  }
  std::vector<std::uint32_t> gsis;
  for (std::uint32_t i = 0; i < used_.size() && gsis.size() < count; ++i) {
    if (!used_[i]) {
      used_[i] = true;
      gsis.push_back(first_ + i);
    }
  }
  return gsis;
}

void GsiAllocator::release(std::span<const std::uint32_t> gsis) {
  // Check the whole list first (a repeat counts as not allocated): a bad list releases nothing.
  std::vector<bool> releasing(used_.size(), false);
  for (std::uint32_t gsi : gsis) {
    if (gsi < first_ || gsi >= limit_ || !used_[gsi - first_] || releasing[gsi - first_]) {
      throw Error("release GSI", "GSI " + std::to_string(gsi) + " was not allocated");
    }
    releasing[gsi - first_] = true;
  }
  for (std::uint32_t gsi : gsis) used_[gsi - first_] = false;
}

std::uint32_t GsiAllocator::available() const noexcept {
  return static_cast<std::uint32_t>(std::count(used_.begin(), used_.end(), false));
}

RouteTable::RouteTable(IrqRouting& sink, bool keep_irqchip_routes)
    : sink_(&sink), keep_irqchip_routes_(keep_irqchip_routes) {}

void RouteTable::stage(std::uint32_t gsi, const MsiMessage& message) {
  if (gsi >= kMaxRoutes) {
    throw Error("route", "GSI " + std::to_string(gsi) + " is beyond KVM's " +
                             std::to_string(kMaxRoutes) + " routes");
  }
  if (keep_irqchip_routes_ && gsi < kFirstMsiGsi) {
    throw Error("route", "GSI " + std::to_string(gsi) + " belongs to the PIC/IOAPIC pins");
  }
  const auto it = msi_routes_.find(gsi);
  if (it != msi_routes_.end()) {
    if (it->second == message) return;
    it->second = message;
    dirty_ = true;
    return;
  }
  // KVM_SET_GSI_ROUTING refuses more than KVM_MAX_IRQ_ROUTES entries, the irqchip's included.
  static const std::size_t kIrqchipRoutes = default_irqchip_routes().size();
  const std::size_t irqchip = keep_irqchip_routes_ ? kIrqchipRoutes : 0;
  if (irqchip + msi_routes_.size() >= kMaxRoutes) {
    throw Error("route", "a route for GSI " + std::to_string(gsi) + " would make " +
                             std::to_string(irqchip + msi_routes_.size() + 1) +
                             " routes, more than KVM's " + std::to_string(kMaxRoutes))
        .hint("unwire vectors that are no longer needed");
  }
  msi_routes_.emplace(gsi, message);
  dirty_ = true;
}

void RouteTable::unstage(std::uint32_t gsi) {
  if (msi_routes_.erase(gsi) != 0) dirty_ = true;
}

void RouteTable::commit() {
  if (!dirty_) return;
  const auto table = entries();
  sink_->set_gsi_routing(table);
  dirty_ = false;
  ++commits_;
}

std::optional<MsiMessage> RouteTable::route(std::uint32_t gsi) const {
  const auto it = msi_routes_.find(gsi);
  if (it == msi_routes_.end()) return std::nullopt;
  return it->second;
}

std::vector<RouteEntry> RouteTable::entries() const {
  std::vector<RouteEntry> table;
  if (keep_irqchip_routes_) table = default_irqchip_routes();
  for (const auto& [gsi, message] : msi_routes_) table.push_back({gsi, message});
  return table;
}

}  // namespace vfiokit::msix
