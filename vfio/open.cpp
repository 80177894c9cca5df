#include "vfiokit/vfio/open.h"

#include "vfiokit/base/error.h"
#include "vfiokit/iommu/group.h"
#include "vfiokit/iommu/type1.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::vfio {

OpenedDevice open_vfio_device(const HostPaths& paths, const pci::Bdf& bdf) {
  if (!pci::pci_device_exists(paths, bdf)) {
    throw Error("open device", "no PCI function " + bdf.to_string() + " on this system")
        .with("bdf", bdf.to_string())
        .hint("`vfiokit list` shows the PCI functions there are");
  }
  const auto driver = pci::read_driver(paths, bdf);
  if (!driver || !iommu::is_vfio_driver(*driver)) {
    throw Error("open device",
                bdf.to_string() + " is on " + driver.value_or("no driver") + ", not vfio-pci")
        .with("bdf", bdf.to_string())
        .hint("`vfiokit bind " + bdf.to_string() + "` moves it (and its IOMMU group) to vfio-pci");
  }
  auto backend = std::make_unique<iommu::Type1Backend>(paths);
  UniqueFd fd = backend->open_device(bdf);
  return OpenedDevice{std::move(backend), VfioDevice(std::move(fd), bdf)};
}

}  // namespace vfiokit::vfio
