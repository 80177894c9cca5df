// `vfiokit check BDF`: is this device ready to be passed through, and what stands in the way.
// Each item is pass/warn/fail with the reason and the fix; display devices get the extra facts
// GPU passthrough needs (functions sharing the slot, BARs above 4 GiB, the option ROM).
#pragma once

#include <vector>

#include "vfiokit/base/check.h"
#include "vfiokit/bind/plan.h"
#include "vfiokit/iommu/host_iommu.h"

namespace vfiokit::bind {

// `view` must hold `bdf` and its group members (gather_host_view).
std::vector<CheckResult> assess_readiness(const HostView& view, const pci::Bdf& bdf,
                                          const iommu::HostIommu& host);

}  // namespace vfiokit::bind
