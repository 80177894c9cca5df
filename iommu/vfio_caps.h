// VFIO "info" capability chains, parsed from the bytes the kernel returned. VFIO_IOMMU_GET_INFO
// and VFIO_DEVICE_GET_REGION_INFO both append a chain of {u16 id, u16 version, u32 next}
// headers, `next` being an offset from the start of the info struct. Hostile or damaged chains
// (a loop, a backward or out-of-bounds pointer, a truncated capability) are errors, never reads
// past the buffer.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace vfiokit::iommu {

using InfoBytes = std::span<const std::uint8_t>;

struct VfioCapability {
  std::uint16_t id = 0;
  std::uint16_t version = 0;
  std::uint32_t offset = 0;  // from the start of the info struct
};

// Walks the chain from `first_offset` (0: no chain). Each capability must start after the
// previous one, lie wholly inside `info`, and leave room for its 8-byte header.
std::vector<VfioCapability> walk_vfio_capabilities(InfoBytes info, std::uint32_t first_offset);

// Little-endian reads that throw Error ("parse VFIO info") past the end.
std::uint16_t info_read16(InfoBytes info, std::size_t offset);
std::uint32_t info_read32(InfoBytes info, std::size_t offset);
std::uint64_t info_read64(InfoBytes info, std::size_t offset);

// An inclusive IOVA range, as the kernel reports them.
struct IovaRange {
  std::uint64_t start = 0;
  std::uint64_t end = 0;  // last usable address
  bool operator==(const IovaRange&) const = default;
};

// VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: the container can log dirty pages (dirty_pages.h).
struct Type1Migration {
  std::uint32_t flags = 0;                  // none defined yet
  std::uint64_t pgsize_bitmap = 0;          // page sizes a dirty bitmap may be asked in
  std::uint64_t max_dirty_bitmap_size = 0;  // bytes of bitmap one GET may ask for
  bool operator==(const Type1Migration&) const = default;
};

// What VFIO_IOMMU_GET_INFO says about a type1 container.
struct Type1Info {
  std::uint64_t iova_pgsizes = 0;      // bitmap of IOMMU page sizes
  std::vector<IovaRange> iova_ranges;  // empty when the kernel gave no IOVA range capability
  std::optional<std::uint32_t> dma_available;  // mappings still allowed (dma_entry_limit)
  std::optional<Type1Migration> migration;     // absent: no dirty page tracking
};
// `info` is the whole buffer the ioctl filled (argsz bytes).
Type1Info parse_type1_info(InfoBytes info);

}  // namespace vfiokit::iommu
