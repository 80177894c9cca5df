// VFIO's argsz protocol: the buffer grows until the kernel's reply fits, and a kernel that keeps
// asking for more is an error, never a zero-filled buffer parsed as its answer.
#include <gtest/gtest.h>

#include "vfiokit/base/error.h"
#include "vfiokit/iommu/argsz.h"

namespace vfiokit::iommu {
namespace {

TEST(Argsz, AReplyThatFitsIsTakenAtOnce) {
  int calls = 0;
  const auto bytes = query_with_argsz(
      24,
      [&](std::span<std::uint8_t> buffer) {
        ++calls;
        buffer[0] = 0xaa;
        return static_cast<std::uint32_t>(buffer.size());
      },
      "VFIO_IOMMU_GET_INFO");
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(bytes.size(), 24u);
  EXPECT_EQ(bytes[0], 0xaa);
}

TEST(Argsz, TheBufferGrowsToWhatTheKernelAsksFor) {
  std::vector<std::size_t> sizes;
  const auto bytes = query_with_argsz(
      24,
      [&](std::span<std::uint8_t> buffer) -> std::uint32_t {
        sizes.push_back(buffer.size());
        if (buffer.size() < 88) return 88;  // capabilities that did not fit
        buffer[87] = 0x55;                  // the last byte of the whole reply
        return 88;
      },
      "VFIO_IOMMU_GET_INFO");
  EXPECT_EQ(sizes, (std::vector<std::size_t>{24, 88}));
  ASSERT_EQ(bytes.size(), 88u);
  EXPECT_EQ(bytes[87], 0x55);
}

TEST(Argsz, AKernelThatKeepsWantingMoreIsAnError) {
  // Each answer larger than the last: after the tries run out the buffer was never filled whole.
  std::uint32_t next = 32;
  EXPECT_THROW(
      query_with_argsz(
          24, [&](std::span<std::uint8_t>) { return next += 8; }, "VFIO_DEVICE_GET_REGION_INFO"),
      Error);
  // An absurd argsz is not followed at all.
  int calls = 0;
  EXPECT_THROW(query_with_argsz(
                   24,
                   [&](std::span<std::uint8_t>) {
                     ++calls;
                     return 0xffffffffu;
                   },
                   "VFIO_IOMMU_GET_INFO"),
               Error);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace vfiokit::iommu
