#include "vfiokit/vfio/summary.h"

#include <gtest/gtest.h>
#include <linux/vfio.h>

namespace vfiokit::vfio {
namespace {

IrqIndexSummary available(std::uint32_t index, std::uint32_t flags) {
  return {index, IrqInfo{index, flags, 65}, {}};
}

TEST(VfioSummary, DynamicMsixIsTheMsixIndexWithoutNoresize) {
  // Linux 6.5 and later: vfio-pci leaves NORESIZE off MSI-X when the platform can allocate
  // vectors while MSI-X is enabled.
  EXPECT_EQ(available(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_INFO_EVENTFD).dynamic_msix(), true);
  // Before 6.5 (Debian 12's 6.1): every MSI and MSI-X index says NORESIZE.
  EXPECT_EQ(available(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE)
                .dynamic_msix(),
            false);
}

TEST(VfioSummary, DynamicMsixIsUnknownForOtherIndexesAndAnUnavailableMsix) {
  // MSI never resizes while enabled, whatever its flags say: the question is MSI-X's alone.
  EXPECT_EQ(available(VFIO_PCI_MSI_IRQ_INDEX, VFIO_IRQ_INFO_EVENTFD).dynamic_msix(), std::nullopt);
  EXPECT_EQ(available(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_INFO_EVENTFD).dynamic_msix(), std::nullopt);
  const IrqIndexSummary absent{VFIO_PCI_MSIX_IRQ_INDEX, std::nullopt, "not available"};
  EXPECT_EQ(absent.dynamic_msix(), std::nullopt);
}

}  // namespace
}  // namespace vfiokit::vfio
