// What VFIO_DEVICE_GET_REGION_INFO returned, parsed from its bytes: flags, size, the offset
// into the device fd, and the capability chain (sparse mmap areas, region type, MSI-X
// mappable). Pure and bounds-checked: hostile chains are errors.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vfiokit::vfio {

struct SparseArea {
  std::uint64_t offset = 0;  // within the region
  std::uint64_t size = 0;
  bool operator==(const SparseArea&) const = default;
};

struct RegionInfo {
  std::uint32_t index = 0;
  std::uint32_t flags = 0;  // VFIO_REGION_INFO_FLAG_*
  std::uint64_t size = 0;
  std::uint64_t offset = 0;  // of the region within the device fd
  // Set when the kernel lists the areas that may be mmap()ed; empty with FLAG_MMAP means all.
  std::optional<std::vector<SparseArea>> sparse_areas;
  std::optional<std::uint32_t> type;  // VFIO_REGION_TYPE_*
  std::optional<std::uint32_t> subtype;
  bool msix_mappable = false;  // the MSI-X table may be mmap()ed too (interrupt remapping)

  [[nodiscard]] bool readable() const noexcept;
  [[nodiscard]] bool writable() const noexcept;
  [[nodiscard]] bool mappable() const noexcept;
  // The parts that may be mmap()ed: the sparse areas, or the whole region, or none.
  [[nodiscard]] std::vector<SparseArea> mappable_areas() const;
  [[nodiscard]] std::string flags_text() const;  // "read write mmap"
};

// `info` is the whole buffer the ioctl filled. Throws Error on a damaged chain, on sparse areas
// outside the region or overlapping, and on a region that overflows the device fd offset.
RegionInfo parse_region_info(std::span<const std::uint8_t> info);

std::string region_name(std::uint32_t index);  // "BAR0", "ROM", "config", "region 9"

}  // namespace vfiokit::vfio
