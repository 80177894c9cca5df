#include "vfiokit/kvm/gic.h"

namespace vfiokit::kvm {

msix::MsiMessage its_msi(std::uint32_t device_id, std::uint32_t event_id) {
  return {kGicItsTranslater, event_id, device_id};
}

bool ram_below_gic(std::uint64_t size) noexcept { return size <= kGicDistributor; }

}  // namespace vfiokit::kvm
