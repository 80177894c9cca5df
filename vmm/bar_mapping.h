// One BAR of a passed-through device, on the host side of the guest: the areas of its region
// that VFIO lets the process mmap go to the guest as memory slots at the BAR's guest address
// (guest accesses then reach the device directly), except the pages that must stay trapped (the
// MSI-X table and PBA); trapped accesses are forwarded through the device fd.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/kvm/vm.h"
#include "vfiokit/vfio/device.h"
#include "vfiokit/vmm/bar_layout.h"

namespace vfiokit::vmm {

// Region offsets [first, second).
using ByteRange = std::pair<std::uint64_t, std::uint64_t>;

class BarMapping {
 public:
  // `device` and `memory` must outlive this. mmaps what the kernel allows (an area it refuses
  // stays trapped); nothing is in the guest until place().
  BarMapping(const vfio::DeviceAccess& device, const BarSpec& bar, std::vector<ByteRange> trapped,
             kvm::GuestMemoryMap& memory);
  // The slots go first, then (members) the mappings they pointed at.
  ~BarMapping();
  BarMapping(const BarMapping&) = delete;
  BarMapping& operator=(const BarMapping&) = delete;

  // Puts the BAR's slots at guest-physical `address` (removing them from where they were). A
  // place the VM refuses (the guest put the BAR over RAM or another BAR, e.g. halfway through
  // moving a 64-bit BAR) leaves the whole BAR trapped until it moves again.
  void place(std::uint64_t address);

  // A trapped access, forwarded with its exact width. Bytes past the end of the region (the
  // rest of the page a small BAR takes in the guest) read as all ones and ignore writes, as
  // when nothing decodes them.
  void read(std::uint64_t offset, std::span<std::uint8_t> data) const;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) const;

  [[nodiscard]] std::uint64_t mapped_bytes() const noexcept { return mapped_bytes_; }
  [[nodiscard]] const std::vector<std::uint32_t>& slots() const noexcept { return slots_; }

 private:
  // One slot's worth: whole pages of a mapped area, none of them trapped.
  struct Piece {
    std::uint64_t offset = 0;  // in the region
    std::span<std::uint8_t> host;
  };
  // Removes the slots (the BAR is then trapped everywhere).
  void clear() noexcept;

  const vfio::DeviceAccess* device_;
  vfio::RegionInfo region_;
  kvm::GuestMemoryMap* memory_;
  // The mmaps outlive the slots that point into them (clear() in the destructor body).
  std::vector<MappedMemory> areas_;
  std::vector<Piece> pieces_;
  std::vector<std::uint32_t> slots_;
  std::uint64_t mapped_bytes_ = 0;
};

}  // namespace vfiokit::vmm
