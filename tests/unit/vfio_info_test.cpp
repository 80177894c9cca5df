#include <gtest/gtest.h>
#include <linux/vfio.h>

#include <cstring>
#include <random>

#include "tests/unit/info_builder.h"
#include "vfiokit/base/error.h"
#include "vfiokit/iommu/vfio_caps.h"
#include "vfiokit/vfio/device.h"
#include "vfiokit/vfio/region_info.h"

namespace vfiokit {
namespace {

using test::InfoBuilder;

// A type1 info buffer the way the rig's kernel returns it: page sizes, two IOVA ranges around
// the MSI window, and DMA-available.
InfoBuilder rig_type1_info() {
  InfoBuilder b(24 + 48 + 12);
  b.u32(0, 84)
      .u32(4, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS)
      .u64(8, 0x40201000)
      .u32(16, 24);
  b.cap(24, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 72).u32(32, 2);
  b.u64(40, 0).u64(48, 0xfedfffff).u64(56, 0xfef00000).u64(64, 0x7fffffffff);
  b.cap(72, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 0).u32(80, 65535);
  return b;
}

TEST(Type1Info, ParsesPageSizesRangesAndDmaAvailable) {
  const iommu::Type1Info info = iommu::parse_type1_info(rig_type1_info().bytes());
  EXPECT_EQ(info.iova_pgsizes, 0x40201000u);  // 4 KiB, 2 MiB, 1 GiB
  EXPECT_EQ(info.iova_ranges,
            (std::vector<iommu::IovaRange>{{0, 0xfedfffff}, {0xfef00000, 0x7fffffffff}}));
  EXPECT_EQ(info.dma_available, 65535u);
  EXPECT_FALSE(info.migration);
}

TEST(Type1Info, WithoutTheCapsFlagTheChainIsIgnored) {
  InfoBuilder b = rig_type1_info();
  b.u32(4, VFIO_IOMMU_INFO_PGSIZES);
  const iommu::Type1Info info = iommu::parse_type1_info(b.bytes());
  EXPECT_TRUE(info.iova_ranges.empty());
  EXPECT_FALSE(info.dma_available);
}

TEST(Type1Info, HostileChainsAreErrors) {
  InfoBuilder loop = rig_type1_info();
  loop.u32(76, 24);  // DMA_AVAIL points back at the IOVA range cap
  EXPECT_THROW(iommu::parse_type1_info(loop.bytes()), Error);
  InfoBuilder self = rig_type1_info();
  self.u32(28, 24);  // points at itself
  EXPECT_THROW(iommu::parse_type1_info(self.bytes()), Error);
  InfoBuilder outside = rig_type1_info();
  outside.u32(76, 4096);
  EXPECT_THROW(iommu::parse_type1_info(outside.bytes()), Error);
  InfoBuilder too_many = rig_type1_info();
  too_many.u32(32, 1000);  // 1000 ranges claimed, 2 present
  EXPECT_THROW(iommu::parse_type1_info(too_many.bytes()), Error);
  InfoBuilder backwards = rig_type1_info();
  backwards.u64(40, 0x2000).u64(48, 0x1000);
  EXPECT_THROW(iommu::parse_type1_info(backwards.bytes()), Error);
  EXPECT_THROW(iommu::parse_type1_info(rig_type1_info().truncated(80)), Error);
  EXPECT_THROW(iommu::parse_type1_info(rig_type1_info().truncated(12)), Error);
}

TEST(Type1Info, RandomBytesNeverCrash) {
  std::mt19937 rng(4);
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(rng() % 200));
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    if (bytes.size() > 8) bytes[4] |= VFIO_IOMMU_INFO_CAPS;
    if (bytes.size() > 20) bytes[16] = static_cast<std::uint8_t>(rng() % 64);
    try {
      iommu::parse_type1_info(bytes);
    } catch (const Error&) {
    }
  }
}

TEST(VfioCaps, ChainOrderAndLimits) {
  InfoBuilder b(256);
  b.cap(32, 1, 64).cap(64, 2, 96).cap(96, 3, 0);
  const auto caps = iommu::walk_vfio_capabilities(b.bytes(), 32);
  ASSERT_EQ(caps.size(), 3u);
  EXPECT_EQ(caps[2].id, 3);
  EXPECT_EQ(caps[2].offset, 96u);
  EXPECT_TRUE(iommu::walk_vfio_capabilities(b.bytes(), 0).empty());
  InfoBuilder overlap(256);
  overlap.cap(32, 1, 36);  // the next header would overlap this one
  EXPECT_THROW(iommu::walk_vfio_capabilities(overlap.bytes(), 32), Error);
}

// NVMe BAR0 in the rig: 16 KiB with the MSI-X table page trapped (sparse areas around it).
InfoBuilder nvme_bar0(bool sparse) {
  InfoBuilder b(32 + 16 + 32 + 8);
  const std::uint32_t flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                              VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
  b.u32(0, 88).u32(4, flags).u32(8, 0).u32(12, 32).u64(16, 0x4000).u64(24, 0);
  if (sparse) {
    b.cap(32, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 80).u32(40, 2);
    b.u64(48, 0x3000).u64(56, 0x1000).u64(64, 0x0).u64(72, 0x2000);  // listed out of order
    b.cap(80, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  } else {
    b.cap(32, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
  }
  return b;
}

TEST(RegionInfo, SparseAreasAreSortedAndMsixMappableNoted) {
  const vfio::RegionInfo info = vfio::parse_region_info(nvme_bar0(true).bytes());
  EXPECT_EQ(info.size, 0x4000u);
  EXPECT_TRUE(info.readable() && info.writable() && info.mappable());
  EXPECT_TRUE(info.msix_mappable);
  ASSERT_TRUE(info.sparse_areas);
  EXPECT_EQ(info.mappable_areas(), (std::vector<vfio::SparseArea>{{0, 0x2000}, {0x3000, 0x1000}}));
  EXPECT_EQ(info.flags_text(), "read write mmap");
}

TEST(RegionInfo, NoSparseCapMeansTheWholeRegionMaps) {
  const vfio::RegionInfo info = vfio::parse_region_info(nvme_bar0(false).bytes());
  EXPECT_FALSE(info.sparse_areas);
  EXPECT_EQ(info.mappable_areas(), (std::vector<vfio::SparseArea>{{0, 0x4000}}));
}

TEST(RegionInfo, BadSparseAreasAreErrors) {
  InfoBuilder outside = nvme_bar0(true);
  outside.u64(56, 0x2000);  // 0x3000 + 0x2000 > 0x4000
  EXPECT_THROW(vfio::parse_region_info(outside.bytes()), Error);
  InfoBuilder overlap = nvme_bar0(true);
  overlap.u64(48, 0x1000);  // overlaps 0x0-0x2000
  EXPECT_THROW(vfio::parse_region_info(overlap.bytes()), Error);
  InfoBuilder wrap = nvme_bar0(true);
  wrap.u64(24, ~std::uint64_t{0} - 0x100);  // offset + size overflows
  EXPECT_THROW(vfio::parse_region_info(wrap.bytes()), Error);
  EXPECT_THROW(vfio::parse_region_info(nvme_bar0(true).truncated(60)), Error);
}

TEST(RegionInfo, TypeCapAndNames) {
  InfoBuilder b(48);
  b.u32(4, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_CAPS)
      .u32(8, 9)
      .u32(12, 32)
      .u64(16, 4096);
  b.cap(32, VFIO_REGION_INFO_CAP_TYPE, 0)
      .u32(40, VFIO_REGION_TYPE_GFX)
      .u32(44, VFIO_REGION_SUBTYPE_GFX_EDID);
  const vfio::RegionInfo info = vfio::parse_region_info(b.bytes());
  EXPECT_EQ(info.type, VFIO_REGION_TYPE_GFX);
  EXPECT_EQ(info.subtype, VFIO_REGION_SUBTYPE_GFX_EDID);
  EXPECT_TRUE(info.mappable_areas().empty());  // no FLAG_MMAP
  EXPECT_EQ(vfio::region_name(0), "BAR0");
  EXPECT_EQ(vfio::region_name(6), "ROM");
  EXPECT_EQ(vfio::region_name(7), "config");
  EXPECT_EQ(vfio::region_name(9), "region 9");
}

}  // namespace
}  // namespace vfiokit

namespace vfiokit::vfio {
namespace {

// A VFIO_DEVICE_GET_PCI_HOT_RESET_INFO reply: the header, then `entries` dependent devices.
std::vector<std::uint8_t> hot_reset_reply(std::uint32_t count, std::size_t entries) {
  std::vector<std::uint8_t> bytes(sizeof(vfio_pci_hot_reset_info) +
                                  entries * sizeof(vfio_pci_dependent_device));
  vfio_pci_hot_reset_info header{};
  header.argsz = static_cast<std::uint32_t>(bytes.size());
  header.count = count;
  std::memcpy(bytes.data(), &header, sizeof header);
  for (std::size_t i = 0; i < entries; ++i) {
    vfio_pci_dependent_device dep{};
    dep.group_id = 7 + static_cast<std::uint32_t>(i);
    dep.segment = 0;
    dep.bus = 3;
    dep.devfn = static_cast<std::uint8_t>(i);  // 03:00.i
    std::memcpy(bytes.data() + sizeof header + i * sizeof dep, &dep, sizeof dep);
  }
  return bytes;
}

TEST(HotResetInfo, ReadsEachDependentDevice) {
  const auto devices = parse_hot_reset_info(hot_reset_reply(2, 2));
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[1], (HotResetDependency{8, *pci::parse_bdf("0000:03:00.1")}));
}

// Found by issue 10: the count was trusted, and entries were read past the buffer.
TEST(HotResetInfo, ACountTheBufferCannotHoldIsClampedToIt) {
  EXPECT_EQ(parse_hot_reset_info(hot_reset_reply(1000, 3)).size(), 3u);
  EXPECT_TRUE(parse_hot_reset_info(hot_reset_reply(5, 0)).empty());
  const std::vector<std::uint8_t> short_header(4, 0xff);
  EXPECT_TRUE(parse_hot_reset_info(short_header).empty());
}

}  // namespace
}  // namespace vfiokit::vfio
