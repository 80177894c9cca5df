#include "vfiokit/k8s/model.h"

namespace vfiokit::k8s {

std::string_view to_string(Health health) noexcept {
  return health == Health::healthy ? "Healthy" : "Unhealthy";
}

}  // namespace vfiokit::k8s
