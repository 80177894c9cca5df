// Where a passed-through device's BARs go in guest-physical (or I/O) space: each naturally
// aligned, largest first, memory BARs below 4 GiB while they fit (so 32-bit payloads reach them)
// and above otherwise. Pure.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vfiokit/pci/config_space.h"

namespace vfiokit::vmm {

struct BarSpec {
  unsigned index = 0;
  pci::BarKind kind = pci::BarKind::mem32;
  bool prefetchable = false;
  std::uint64_t size = 0;  // a power of two
};

struct GuestBar {
  BarSpec spec;
  std::uint64_t address = 0;  // guest-physical, or an I/O port for io BARs
};

struct BarWindows {
  std::uint64_t mmio32_start = 0xc0000000;
  std::uint64_t mmio32_end = 0xfebfffff;  // below the IOAPIC (0xfec00000) and LAPIC (0xfee00000)
  std::uint64_t mmio64_start = std::uint64_t{1} << 36;  // 64 GiB
  std::uint64_t mmio64_end = (std::uint64_t{1} << 40) - 1;
  std::uint64_t io_start = 0xc000;
  std::uint64_t io_end = 0xffff;
};

// Throws Error naming the BAR that does not fit, or a size that is not a power of two.
std::vector<GuestBar> assign_bars(std::span<const BarSpec> bars, const BarWindows& windows = {});

}  // namespace vfiokit::vmm
