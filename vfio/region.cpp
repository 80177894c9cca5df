#include "vfiokit/vfio/region.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"

namespace vfiokit::vfio {

Region::Region(const VfioDevice& device, std::uint32_t index, RegionMapping mapping)
    : device_(&device), info_(device.region_info(index)) {
  if (mapping == RegionMapping::never) return;
  const int prot = (info_.readable() ? PROT_READ : 0) | (info_.writable() ? PROT_WRITE : 0);
  for (const SparseArea& area : info_.mappable_areas()) {
    // Kernel contract: the mmap offset is the region's offset in the device fd plus the area's
    // offset, page aligned; the length is the area's size.
    void* address = ::mmap(nullptr, area.size, prot, MAP_SHARED, device.fd(),
                           static_cast<off_t>(info_.offset + area.offset));
    if (address == MAP_FAILED) {
      // Not fatal: the area stays reachable through pread/pwrite.
      const int err = errno;
      log::warn("{} {}: mmap of {}+{} failed ({}); using pread/pwrite", device.bdf().to_string(),
                region_name(index), hex(area.offset), hex(area.size), std::strerror(err));
      continue;
    }
    areas_.push_back({area.offset, MappedMemory(address, area.size)});
  }
}

bool Region::mapped(std::uint64_t offset, std::size_t width) const noexcept {
  return address(offset, width) != nullptr;
}

std::span<std::uint8_t> Region::mapped_range(std::uint64_t offset,
                                             std::size_t length) const noexcept {
  // Not for our own accesses (those stay volatile), so the qualifier can go.
  auto* start =
      const_cast<std::uint8_t*>(static_cast<volatile std::uint8_t*>(address(offset, length)));
  return start ? std::span<std::uint8_t>(start, length) : std::span<std::uint8_t>{};
}

std::string_view Region::path_for(std::uint64_t offset, std::size_t width) const noexcept {
  return mapped(offset, width) ? "mmap" : "pread/pwrite";
}

volatile void* Region::address(std::uint64_t offset, std::size_t width) const noexcept {
  for (const Area& area : areas_) {
    if (offset >= area.offset && offset - area.offset + width <= area.memory.size()) {
      return static_cast<volatile std::uint8_t*>(area.memory.data()) + (offset - area.offset);
    }
  }
  return nullptr;
}

Error Region::access_error(std::uint64_t offset, std::size_t width, bool writing,
                           std::string message) const {
  return Error(writing ? "write register" : "read register", std::move(message))
      .with("bdf", device_->bdf().to_string())
      .with("region", region_name(info_.index))
      .with("offset", hex(offset))
      .with("width", std::to_string(width));
}

void Region::check(std::uint64_t offset, std::size_t width, bool writing) const {
  auto fail = [&](std::string message) {
    return access_error(offset, width, writing, std::move(message));
  };
  if (offset > info_.size || width > info_.size - offset) throw fail("past the end of the region");
  if (offset % width != 0) throw fail("unaligned access");
  if (writing ? !info_.writable() : !info_.readable()) {
    throw fail(writing ? "the region is not writable" : "the region is not readable");
  }
}

template <typename T>
T Region::read_as(std::uint64_t offset) const {
  check(offset, sizeof(T), false);
  if (volatile void* at = address(offset, sizeof(T))) return *static_cast<volatile T*>(at);
  T value{};
  device_->region_read(info_, offset, {reinterpret_cast<std::uint8_t*>(&value), sizeof value});
  return value;
}

template <typename T>
void Region::write_as(std::uint64_t offset, T value) const {
  check(offset, sizeof(T), true);
  if (volatile void* at = address(offset, sizeof(T))) {
    *static_cast<volatile T*>(at) = value;
    return;
  }
  device_->region_write(info_, offset,
                        {reinterpret_cast<const std::uint8_t*>(&value), sizeof value});
}

std::uint8_t Region::read8(std::uint64_t offset) const { return read_as<std::uint8_t>(offset); }
std::uint16_t Region::read16(std::uint64_t offset) const { return read_as<std::uint16_t>(offset); }
std::uint32_t Region::read32(std::uint64_t offset) const { return read_as<std::uint32_t>(offset); }
std::uint64_t Region::read64(std::uint64_t offset) const { return read_as<std::uint64_t>(offset); }
void Region::write8(std::uint64_t offset, std::uint8_t value) const { write_as(offset, value); }
void Region::write16(std::uint64_t offset, std::uint16_t value) const { write_as(offset, value); }
void Region::write32(std::uint64_t offset, std::uint32_t value) const { write_as(offset, value); }
void Region::write64(std::uint64_t offset, std::uint64_t value) const { write_as(offset, value); }

void Region::read(std::uint64_t offset, std::span<std::uint8_t> out) const {
  std::uint64_t value = 0;
  switch (out.size()) {
    case 1:
      value = read8(offset);
      break;
    case 2:
      value = read16(offset);
      break;
    case 4:
      value = read32(offset);
      break;
    case 8:
      value = read64(offset);
      break;
    default:
      throw access_error(offset, out.size(), false, "accesses are 1, 2, 4 or 8 bytes wide");
  }
  std::memcpy(out.data(), &value, out.size());  // x86 and arm64 are little endian, as PCI is
}

void Region::write(std::uint64_t offset, std::span<const std::uint8_t> in) const {
  std::uint64_t value = 0;
  std::memcpy(&value, in.data(), std::min(in.size(), sizeof value));
  switch (in.size()) {
    case 1:
      write8(offset, static_cast<std::uint8_t>(value));
      break;
    case 2:
      write16(offset, static_cast<std::uint16_t>(value));
      break;
    case 4:
      write32(offset, static_cast<std::uint32_t>(value));
      break;
    case 8:
      write64(offset, value);
      break;
    default:
      throw access_error(offset, in.size(), true, "accesses are 1, 2, 4 or 8 bytes wide");
  }
}

}  // namespace vfiokit::vfio
