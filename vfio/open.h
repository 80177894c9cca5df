// Opening a device that is bound to vfio-pci: the IOMMU backend (container and group, set up
// in the kernel's order) and the device fd, owned together and torn down in reverse.
#pragma once

#include <memory>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/iommu/backend.h"
#include "vfiokit/vfio/device.h"

namespace vfiokit::vfio {

struct OpenedDevice {
  // Members are destroyed bottom-up: the device fd closes first, then the backend unmaps what
  // is still mapped, lets the groups go, and closes the container. Regions, DMA spaces and
  // interrupt vectors made from these must be gone before this is.
  std::unique_ptr<iommu::IommuBackend> backend;
  VfioDevice device;
};

// Throws Error naming the problem: the device missing, not on vfio-pci, its group not viable
// (with the culprits), VFIO not loaded.
OpenedDevice open_vfio_device(const HostPaths& paths, const pci::Bdf& bdf);

}  // namespace vfiokit::vfio
