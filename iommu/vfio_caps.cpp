#include "vfiokit/iommu/vfio_caps.h"

#include <linux/vfio.h>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"

namespace vfiokit::iommu {
namespace {

constexpr std::size_t kHeaderSize = 8;
constexpr std::size_t kMaxCapabilities = 64;

void require(InfoBytes info, std::size_t offset, std::size_t length, const char* what) {
  if (offset <= info.size() && length <= info.size() - offset) return;
  throw Error("parse VFIO info", std::string(what) + " at " + hex(offset) + " needs " +
                                     std::to_string(length) + " bytes, but the kernel returned " +
                                     std::to_string(info.size()));
}

}  // namespace

std::uint16_t info_read16(InfoBytes info, std::size_t offset) {
  require(info, offset, 2, "a u16");
  return static_cast<std::uint16_t>(info[offset] | info[offset + 1] << 8);
}

std::uint32_t info_read32(InfoBytes info, std::size_t offset) {
  require(info, offset, 4, "a u32");
  return static_cast<std::uint32_t>(info_read16(info, offset)) |
         static_cast<std::uint32_t>(info_read16(info, offset + 2)) << 16;
}

std::uint64_t info_read64(InfoBytes info, std::size_t offset) {
  require(info, offset, 8, "a u64");
  return static_cast<std::uint64_t>(info_read32(info, offset)) |
         static_cast<std::uint64_t>(info_read32(info, offset + 4)) << 32;
}

std::vector<VfioCapability> walk_vfio_capabilities(InfoBytes info, std::uint32_t first_offset) {
  std::vector<VfioCapability> caps;
  std::size_t offset = first_offset;
  std::size_t previous_end = 0;
  while (offset != 0) {
    if (offset < previous_end) {
      throw Error("parse VFIO info",
                  "capability at " + hex(offset) + " points back into the one before it (a loop)");
    }
    if (caps.size() == kMaxCapabilities) {
      throw Error("parse VFIO info",
                  "more than " + std::to_string(kMaxCapabilities) + " capabilities in one chain");
    }
    require(info, offset, kHeaderSize, "capability header");
    VfioCapability cap{info_read16(info, offset), info_read16(info, offset + 2),
                       static_cast<std::uint32_t>(offset)};
    caps.push_back(cap);
    previous_end = offset + kHeaderSize;
    offset = info_read32(info, offset + 4);
  }
  return caps;
}

Type1Info parse_type1_info(InfoBytes info) {
  require(info, 0, 16, "vfio_iommu_type1_info");
  Type1Info result;
  const std::uint32_t flags = info_read32(info, 4);
  if (flags & VFIO_IOMMU_INFO_PGSIZES) result.iova_pgsizes = info_read64(info, 8);
  if (!(flags & VFIO_IOMMU_INFO_CAPS) || info.size() < 20) return result;
  for (const auto& cap : walk_vfio_capabilities(info, info_read32(info, 16))) {
    switch (cap.id) {
      case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: {
        const std::uint32_t count = info_read32(info, cap.offset + 8u);
        require(info, cap.offset + 16u, std::size_t{count} * 16, "IOVA ranges");
        for (std::uint32_t i = 0; i < count; ++i) {
          const std::size_t at = cap.offset + 16u + std::size_t{i} * 16;
          IovaRange range{info_read64(info, at), info_read64(info, at + 8)};
          if (range.end < range.start) {
            throw Error("parse VFIO info", "IOVA range " + hex(range.start) + "-" + hex(range.end) +
                                               " ends before it starts");
          }
          result.iova_ranges.push_back(range);
        }
        break;
      }
      case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL:
        result.dma_available = info_read32(info, cap.offset + 8u);
        break;
      case VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION:
        require(info, cap.offset, 32, "migration capability");
        result.migration =
            Type1Migration{info_read32(info, cap.offset + 8u), info_read64(info, cap.offset + 16u),
                           info_read64(info, cap.offset + 24u)};
        break;
      default:
        break;  // capabilities newer than this code are skipped, not errors
    }
  }
  return result;
}

}  // namespace vfiokit::iommu
