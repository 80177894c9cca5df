#include "vfiokit/msix/wiring.h"

#include <poll.h>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"

namespace vfiokit::msix {

MsixWiring::MsixWiring(const vfio::DeviceAccess& device, std::uint32_t irq_index,
                       RouteTable& routes)
    : routes_(&routes), vectors_(device, irq_index) {}

MsixWiring::~MsixWiring() { teardown(); }

void MsixWiring::check(std::uint32_t vector) const {
  if (vector >= gsis_.size()) {
    throw Error("MSI-X wiring", "vector " + std::to_string(vector) + " is not wired (" +
                                    std::to_string(gsis_.size()) + " are)");
  }
}

void MsixWiring::wire(const std::vector<MsiMessage>& messages, const std::vector<bool>& masked) {
  if (!gsis_.empty()) throw Error("MSI-X wiring", "already wired; tear down first");
  const auto count = static_cast<std::uint32_t>(messages.size());
  std::vector<std::uint32_t> gsis = routes_->gsis().allocate(count);
  try {
    for (std::uint32_t v = 0; v < count; ++v) routes_->stage(gsis[v], messages[v]);
    routes_->commit();
    vectors_.enable(count);
    gsis_ = gsis;
    masked_.assign(count, true);  // not yet assigned
    for (std::uint32_t v = 0; v < count; ++v) {
      if (v >= masked.size() || !masked[v]) unmask(v);
    }
  } catch (...) {
    teardown();
    if (gsis_.empty()) give_back(gsis);  // failed before the GSIs were taken over
    throw;
  }
}

void MsixWiring::give_back(const std::vector<std::uint32_t>& gsis) noexcept {
  for (std::uint32_t gsi : gsis) routes_->unstage(gsi);
  try {
    routes_->commit();
  } catch (const Error& e) {
    log::error("{}", e.what());
  }
  routes_->gsis().release(gsis);
}

bool MsixWiring::grow(const std::vector<MsiMessage>& messages, const std::vector<bool>& masked) {
  const std::uint32_t old = count();
  const auto total = static_cast<std::uint32_t>(messages.size());
  if (total <= old) return false;
  if (old == 0) {
    wire(messages, masked);
    return false;
  }
  const bool gap = vectors_.info().noresize();
  std::vector<std::uint32_t> gsis = routes_->gsis().allocate(total - old);
  try {
    for (std::uint32_t v = old; v < total; ++v) routes_->stage(gsis[v - old], messages[v]);
    routes_->commit();
    vectors_.grow(total);
  } catch (...) {
    give_back(gsis);
    throw;
  }
  gsis_.insert(gsis_.end(), gsis.begin(), gsis.end());
  masked_.resize(total, true);  // not yet assigned
  for (std::uint32_t v = old; v < total; ++v) {
    if (v >= masked.size() || !masked[v]) unmask(v);
  }
  if (gap) {
    // The old vectors kept their eventfds and irqfds; only the device side went off and on.
    for (std::uint32_t v = 0; v < old; ++v) {
      if (!masked_[v]) vectors_.trigger(v);
    }
  }
  return gap;
}

void MsixWiring::retarget(std::uint32_t vector, const MsiMessage& message) {
  check(vector);
  routes_->stage(gsis_[vector], message);
  routes_->commit();
}

void MsixWiring::mask(std::uint32_t vector) {
  check(vector);
  if (masked_[vector]) return;
  routes_->sink().deassign_irqfd(vectors_.eventfd(vector), gsis_[vector]);
  masked_[vector] = true;
}

void MsixWiring::unmask(std::uint32_t vector) {
  check(vector);
  if (!masked_[vector]) return;
  // KVM polls the eventfd while assigning: a count left there while masked is injected now.
  routes_->sink().assign_irqfd(vectors_.eventfd(vector), gsis_[vector]);
  masked_[vector] = false;
}

bool MsixWiring::masked(std::uint32_t vector) const {
  check(vector);
  return masked_[vector];
}

bool MsixWiring::pending(std::uint32_t vector) const {
  check(vector);
  if (!masked_[vector]) return false;
  pollfd fd{vectors_.eventfd(vector), POLLIN, 0};
  return ::poll(&fd, 1, 0) == 1 && (fd.revents & POLLIN) != 0;
}

std::uint32_t MsixWiring::gsi(std::uint32_t vector) const {
  check(vector);
  return gsis_[vector];
}

void MsixWiring::teardown() noexcept {
  // irqfds first: KVM must stop waiting on eventfds that are about to close.
  for (std::uint32_t v = 0; v < gsis_.size(); ++v) {
    if (masked_[v]) continue;
    try {
      routes_->sink().deassign_irqfd(vectors_.eventfd(v), gsis_[v]);
    } catch (const Error& e) {
      log::error("{}", e.what());
    }
    masked_[v] = true;
  }
  // Then the device stops signalling them.
  try {
    vectors_.disable();
  } catch (const Error& e) {
    log::error("{}", e.what());
  }
  if (gsis_.empty()) return;
  for (std::uint32_t gsi : gsis_) routes_->unstage(gsi);
  try {
    routes_->commit();
    routes_->gsis().release(gsis_);
  } catch (const Error& e) {
    log::error("{}", e.what());
  }
  gsis_.clear();
  masked_.clear();
}

}  // namespace vfiokit::msix
