#include "vfiokit/vfio/irq_set.h"

#include <gtest/gtest.h>
#include <linux/vfio.h>

#include <cstring>

#include "vfiokit/base/error.h"

namespace vfiokit::vfio {
namespace {

std::uint32_t u32_at(const std::vector<std::uint8_t>& bytes, std::size_t offset) {
  std::uint32_t v;
  std::memcpy(&v, bytes.data() + offset, 4);
  return v;
}

TEST(IrqSet, EventfdsMakeTwentyBytesPlusFourEach) {
  const std::vector<std::int32_t> fds = {7, 8, 9};
  const auto bytes = encode_irq_set(VFIO_PCI_MSIX_IRQ_INDEX, 5, 3,
                                    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, fds);
  ASSERT_EQ(bytes.size(), 32u);
  EXPECT_EQ(u32_at(bytes, 0), 32u);  // argsz
  EXPECT_EQ(u32_at(bytes, 4), VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER);
  EXPECT_EQ(u32_at(bytes, 8), 2u);   // index
  EXPECT_EQ(u32_at(bytes, 12), 5u);  // start
  EXPECT_EQ(u32_at(bytes, 16), 3u);  // count
  EXPECT_EQ(u32_at(bytes, 20), 7u);
  EXPECT_EQ(u32_at(bytes, 28), 9u);
}

TEST(IrqSet, SixtyFiveVectors) {
  std::vector<std::int32_t> fds(65);
  for (int i = 0; i < 65; ++i) fds[static_cast<std::size_t>(i)] = 100 + i;
  const auto bytes = encode_irq_set(VFIO_PCI_MSIX_IRQ_INDEX, 0, 65,
                                    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, fds);
  EXPECT_EQ(bytes.size(), 20u + 4 * 65);
  EXPECT_EQ(u32_at(bytes, 20 + 4 * 64), 164u);
}

TEST(IrqSet, DisableAndLoopbackCarryNoData) {
  const auto disable = encode_irq_set(VFIO_PCI_MSI_IRQ_INDEX, 0, 0,
                                      VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER);
  EXPECT_EQ(disable.size(), 20u);
  EXPECT_EQ(u32_at(disable, 16), 0u);
  const auto fire = encode_irq_set(VFIO_PCI_MSIX_IRQ_INDEX, 64, 1,
                                   VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER);
  EXPECT_EQ(fire.size(), 20u);
  EXPECT_EQ(u32_at(fire, 12), 64u);
  const std::vector<std::uint8_t> bools = {1, 0};
  EXPECT_EQ(
      encode_irq_set(0, 0, 2, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK, {}, bools).size(),
      22u);
}

TEST(IrqSet, MismatchedDataAndFlagsAreErrors) {
  const std::vector<std::int32_t> two = {1, 2};
  EXPECT_THROW(
      encode_irq_set(2, 0, 3, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, two), Error);
  EXPECT_THROW(encode_irq_set(2, 0, 2, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, two),
               Error);
  EXPECT_THROW(encode_irq_set(2, 0, 0,
                              VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_EVENTFD |
                                  VFIO_IRQ_SET_ACTION_TRIGGER),
               Error);
  EXPECT_THROW(encode_irq_set(2, 0, 0, VFIO_IRQ_SET_DATA_NONE), Error);  // no action
  EXPECT_THROW(
      encode_irq_set(
          2, 0, 0, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK),
      Error);
}

}  // namespace
}  // namespace vfiokit::vfio
