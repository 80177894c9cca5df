#include "vfiokit/vfio/region_info.h"

#include <linux/vfio.h>

#include <algorithm>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/iommu/vfio_caps.h"

namespace vfiokit::vfio {

bool RegionInfo::readable() const noexcept { return flags & VFIO_REGION_INFO_FLAG_READ; }
bool RegionInfo::writable() const noexcept { return flags & VFIO_REGION_INFO_FLAG_WRITE; }
bool RegionInfo::mappable() const noexcept { return flags & VFIO_REGION_INFO_FLAG_MMAP; }

std::vector<SparseArea> RegionInfo::mappable_areas() const {
  if (!mappable() || size == 0) return {};
  if (sparse_areas) return *sparse_areas;
  return {{0, size}};
}

std::string RegionInfo::flags_text() const {
  std::vector<std::string> words;
  if (readable()) words.emplace_back("read");
  if (writable()) words.emplace_back("write");
  if (mappable()) words.emplace_back("mmap");
  return words.empty() ? "-" : join(words, " ");
}

RegionInfo parse_region_info(std::span<const std::uint8_t> info) {
  using iommu::info_read32;
  using iommu::info_read64;
  RegionInfo region;
  region.flags = info_read32(info, 4);
  region.index = info_read32(info, 8);
  region.size = info_read64(info, 16);
  region.offset = info_read64(info, 24);
  if (region.size != 0 && region.offset > ~std::uint64_t{0} - region.size) {
    throw Error("parse region info",
                "region " + std::to_string(region.index) + " overflows the device fd");
  }
  if (!(region.flags & VFIO_REGION_INFO_FLAG_CAPS)) return region;
  for (const auto& cap : iommu::walk_vfio_capabilities(info, info_read32(info, 12))) {
    switch (cap.id) {
      case VFIO_REGION_INFO_CAP_SPARSE_MMAP: {
        const std::uint32_t count = info_read32(info, cap.offset + 8u);
        std::vector<SparseArea> areas;
        for (std::uint32_t i = 0; i < count; ++i) {
          const std::size_t at = cap.offset + 16u + std::size_t{i} * 16;
          SparseArea area{info_read64(info, at), info_read64(info, at + 8)};
          if (area.size == 0) continue;
          if (area.offset > region.size || area.size > region.size - area.offset) {
            throw Error("parse region info", "sparse mmap area " + hex(area.offset) + "+" +
                                                 hex(area.size) + " lies outside region " +
                                                 std::to_string(region.index));
          }
          areas.push_back(area);
        }
        std::sort(areas.begin(), areas.end(),
                  [](const SparseArea& a, const SparseArea& b) { return a.offset < b.offset; });
        for (std::size_t i = 1; i < areas.size(); ++i) {
          if (areas[i].offset < areas[i - 1].offset + areas[i - 1].size) {
            throw Error("parse region info",
                        "sparse mmap areas overlap in region " + std::to_string(region.index));
          }
        }
        region.sparse_areas = std::move(areas);
        break;
      }
      case VFIO_REGION_INFO_CAP_TYPE:
        region.type = info_read32(info, cap.offset + 8u);
        region.subtype = info_read32(info, cap.offset + 12u);
        break;
      case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
        region.msix_mappable = true;
        break;
      default:
        break;
    }
  }
  return region;
}

std::string region_name(std::uint32_t index) {
  if (index <= VFIO_PCI_BAR5_REGION_INDEX) return "BAR" + std::to_string(index);
  if (index == VFIO_PCI_ROM_REGION_INDEX) return "ROM";
  if (index == VFIO_PCI_CONFIG_REGION_INDEX) return "config";
  if (index == VFIO_PCI_VGA_REGION_INDEX) return "VGA";
  return "region " + std::to_string(index);
}

}  // namespace vfiokit::vfio
