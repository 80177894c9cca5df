// Typed access to one device region (a BAR): through mmap where the kernel allows it, through
// pread/pwrite on the device fd elsewhere (trapped areas such as the MSI-X table, or regions
// without FLAG_MMAP). Every access has the exact width asked for, as device registers need.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/error.h"
#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/vfio/device.h"

namespace vfiokit::vfio {

enum class RegionMapping {
  where_allowed,  // mmap every area the kernel allows
  never,          // every access through pread/pwrite (for comparison and for debugging)
};

class Region {
 public:
  // `device` must outlive the region (the mappings are undone first, then the fd may close).
  Region(const VfioDevice& device, std::uint32_t index,
         RegionMapping mapping = RegionMapping::where_allowed);

  [[nodiscard]] const RegionInfo& info() const noexcept { return info_; }
  // True when [offset, offset + width) lies in an mmap()ed area.
  [[nodiscard]] bool mapped(std::uint64_t offset, std::size_t width) const noexcept;
  [[nodiscard]] std::string_view path_for(std::uint64_t offset, std::size_t width) const noexcept;
  // The process's mapping of [offset, offset + length), for handing the memory to someone else
  // (a KVM memory slot); empty when that range is not wholly mmap()ed.
  [[nodiscard]] std::span<std::uint8_t> mapped_range(std::uint64_t offset,
                                                     std::size_t length) const noexcept;

  std::uint8_t read8(std::uint64_t offset) const;
  std::uint16_t read16(std::uint64_t offset) const;
  std::uint32_t read32(std::uint64_t offset) const;
  std::uint64_t read64(std::uint64_t offset) const;
  void write8(std::uint64_t offset, std::uint8_t value) const;
  void write16(std::uint64_t offset, std::uint16_t value) const;
  void write32(std::uint64_t offset, std::uint32_t value) const;
  void write64(std::uint64_t offset, std::uint64_t value) const;
  // One access as wide as the span (1, 2, 4 or 8 bytes), its bytes in the device's (little
  // endian) order: a trapped guest access forwarded as it came. Other widths throw Error.
  void read(std::uint64_t offset, std::span<std::uint8_t> out) const;
  void write(std::uint64_t offset, std::span<const std::uint8_t> in) const;

 private:
  struct Area {
    std::uint64_t offset;  // within the region
    MappedMemory memory;
  };
  template <typename T>
  T read_as(std::uint64_t offset) const;
  template <typename T>
  void write_as(std::uint64_t offset, T value) const;
  // The mapped address of [offset, offset + width), or nullptr.
  volatile void* address(std::uint64_t offset, std::size_t width) const noexcept;
  void check(std::uint64_t offset, std::size_t width, bool writing) const;
  [[nodiscard]] Error access_error(std::uint64_t offset, std::size_t width, bool writing,
                                   std::string message) const;

  const VfioDevice* device_;
  RegionInfo info_;
  std::vector<Area> areas_;
};

}  // namespace vfiokit::vfio
