#include "vfiokit/vmm/bar_mapping.h"

#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"

namespace vfiokit::vmm {
namespace {

constexpr std::uint64_t kPage = 4096;

// [start, end) less every trapped range.
std::vector<ByteRange> subtract(ByteRange area, const std::vector<ByteRange>& trapped) {
  std::vector<ByteRange> pieces = {area};
  for (const auto& [trap_start, trap_end] : trapped) {
    std::vector<ByteRange> next;
    for (const auto& [start, end] : pieces) {
      if (trap_end <= start || trap_start >= end) {
        next.emplace_back(start, end);
        continue;
      }
      if (start < trap_start) next.emplace_back(start, trap_start);
      if (trap_end < end) next.emplace_back(trap_end, end);
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace

BarMapping::BarMapping(const vfio::DeviceAccess& device, const BarSpec& bar,
                       std::vector<ByteRange> trapped, kvm::GuestMemoryMap& memory)
    : device_(&device), region_(device.region_info(bar.index)), memory_(&memory) {
  if (bar.kind == pci::BarKind::io) return;  // port I/O is always trapped
  for (const vfio::SparseArea& area : region_.mappable_areas()) {
    MappedMemory mapping;
    try {
      mapping = device.map_region(region_, area.offset, area.size);
    } catch (const Error& e) {
      log::warn("BAR{} {}+{} stays trapped: {}", bar.index, hex(area.offset), hex(area.size),
                e.what());
      continue;
    }
    for (const auto& [start, end] : subtract({area.offset, area.offset + area.size}, trapped)) {
      // KVM maps whole pages: a piece that is not one stays trapped.
      if (start % kPage || end % kPage || end <= start) continue;
      pieces_.push_back({start, mapping.bytes().subspan(start - area.offset, end - start)});
    }
    areas_.push_back(std::move(mapping));
  }
}

BarMapping::~BarMapping() { clear(); }

void BarMapping::clear() noexcept {
  for (std::uint32_t slot : slots_) {
    try {
      memory_->unmap_memory(slot);
    } catch (const Error& e) {
      log::error("{}", e.what());
    }
  }
  slots_.clear();
  mapped_bytes_ = 0;
}

void BarMapping::place(std::uint64_t address) {
  clear();
  for (const Piece& piece : pieces_) {
    try {
      slots_.push_back(memory_->map_memory(address + piece.offset, piece.host));
    } catch (const Error& e) {
      log::warn("{} at {} stays trapped: {}", vfio::region_name(region_.index), hex(address),
                e.what());
      clear();
      return;
    }
    mapped_bytes_ += piece.host.size();
  }
}

void BarMapping::read(std::uint64_t offset, std::span<std::uint8_t> data) const {
  if (offset > region_.size || data.size() > region_.size - offset) {
    std::memset(data.data(), 0xff, data.size());
    return;
  }
  device_->region_read(region_, offset, data);
}

void BarMapping::write(std::uint64_t offset, std::span<const std::uint8_t> data) const {
  if (offset > region_.size || data.size() > region_.size - offset) return;
  device_->region_write(region_, offset, data);
}

}  // namespace vfiokit::vmm
