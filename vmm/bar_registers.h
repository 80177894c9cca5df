// The guest's Base Address Registers of a passed-through device (config 0x10-0x27): what they
// read (the guest's addresses with the BAR's type bits, or the size mask while the guest sizes
// a BAR) and what a write does (sizing, or a move). The host's own BARs are never touched: the
// guest's layout is virtual. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vfiokit/vmm/bar_layout.h"

namespace vfiokit::vmm {

struct BarMove {
  unsigned index = 0;  // the BAR's first register
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  bool operator==(const BarMove&) const = default;
};

// A guest-physical address or port inside one of the BARs.
struct BarHit {
  unsigned index = 0;
  std::uint64_t offset = 0;  // from the BAR's start
};

class BarRegisters {
 public:
  explicit BarRegisters(std::vector<GuestBar> bars);

  // The bytes of the six BAR registers.
  [[nodiscard]] static bool covers(std::uint32_t offset) noexcept;
  // Unimplemented registers (and the upper half of a 64-bit BAR that is not one) read as zero.
  [[nodiscard]] std::uint8_t read_byte(std::uint32_t offset) const noexcept;
  // A guest write of `bytes` at `offset`, inside one register: sizing and moving need the whole
  // register, so a narrower write is merged into what the register reads. Returns the move it
  // makes, if it makes one.
  std::optional<BarMove> write(std::uint32_t offset, std::span<const std::uint8_t> bytes);

  // In BAR index order, with the addresses the guest has given them.
  [[nodiscard]] const std::vector<GuestBar>& bars() const noexcept { return bars_; }
  // The memory BAR that decodes guest-physical `address`, or the I/O BAR that decodes `port`.
  [[nodiscard]] std::optional<BarHit> memory_at(std::uint64_t address) const noexcept;
  [[nodiscard]] std::optional<BarHit> io_at(std::uint64_t port) const noexcept;

 private:
  // The BAR whose register (low, or the high half of a 64-bit one) is at `offset`.
  std::size_t bar_for_register(std::uint32_t offset, bool& high) const noexcept;
  [[nodiscard]] std::optional<BarHit> hit(std::uint64_t at, bool io) const noexcept;

  std::vector<GuestBar> bars_;
  // Per BAR: the guest wrote all ones to its low (high) register and reads the size mask.
  std::vector<bool> sizing_low_;
  std::vector<bool> sizing_high_;
};

}  // namespace vfiokit::vmm
