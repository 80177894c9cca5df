#include "vfiokit/vmm/bar_registers.h"

#include <linux/pci_regs.h>

#include <algorithm>

namespace vfiokit::vmm {
namespace {

constexpr std::uint32_t kFirst = PCI_BASE_ADDRESS_0;
constexpr std::uint32_t kEnd = PCI_BASE_ADDRESS_5 + 4;
constexpr std::size_t kNone = ~std::size_t{0};

}  // namespace

BarRegisters::BarRegisters(std::vector<GuestBar> bars)
    : bars_(std::move(bars)), sizing_low_(bars_.size()), sizing_high_(bars_.size()) {
  std::sort(bars_.begin(), bars_.end(),
            [](const GuestBar& a, const GuestBar& b) { return a.spec.index < b.spec.index; });
}

bool BarRegisters::covers(std::uint32_t offset) noexcept {
  return offset >= kFirst && offset < kEnd;
}

std::size_t BarRegisters::bar_for_register(std::uint32_t offset, bool& high) const noexcept {
  const unsigned slot = (offset - kFirst) / 4;
  for (std::size_t i = 0; i < bars_.size(); ++i) {
    const BarSpec& spec = bars_[i].spec;
    if (spec.index == slot) {
      high = false;
      return i;
    }
    if (spec.kind == pci::BarKind::mem64 && spec.index + 1 == slot) {
      high = true;
      return i;
    }
  }
  return kNone;
}

std::uint8_t BarRegisters::read_byte(std::uint32_t offset) const noexcept {
  if (!covers(offset)) return 0;
  bool high = false;
  const std::size_t i = bar_for_register(offset, high);
  if (i == kNone) return 0;
  const BarSpec& spec = bars_[i].spec;
  // While sizing, the half being sized reads as the size mask instead of the address.
  const bool sizing = high ? sizing_high_[i] : sizing_low_[i];
  const std::uint64_t shown = sizing ? ~(spec.size - 1) : bars_[i].address;
  const std::uint64_t value =
      pci::encode_bar_register({spec.index, spec.kind, spec.prefetchable, shown});
  return static_cast<std::uint8_t>(value >> (32 * unsigned{high} + 8 * (offset % 4)));
}

std::optional<BarMove> BarRegisters::write(std::uint32_t offset,
                                           std::span<const std::uint8_t> bytes) {
  if (bytes.empty() || !covers(offset)) return std::nullopt;
  const std::uint32_t register_offset = offset & ~3u;
  std::uint32_t value = 0;
  for (std::uint32_t i = 0; i < 4; ++i) {
    const std::uint32_t at = register_offset + i;
    const bool written = at >= offset && at - offset < bytes.size();
    const std::uint8_t byte = written ? bytes[at - offset] : read_byte(at);
    value |= std::uint32_t{byte} << (8 * i);
  }
  bool high = false;
  const std::size_t i = bar_for_register(register_offset, high);
  if (i == kNone) return std::nullopt;
  GuestBar& bar = bars_[i];
  if (value == 0xffffffffu) {  // sizing: the next read returns the size mask
    (high ? sizing_high_[i] : sizing_low_[i]) = true;
    return std::nullopt;
  }
  (high ? sizing_high_[i] : sizing_low_[i]) = false;
  const std::uint64_t size_mask = ~(bar.spec.size - 1);
  std::uint64_t address = bar.address;
  if (high) {
    address = (address & 0xffffffffull) | std::uint64_t{value} << 32;
  } else {
    // The type bits (2 of an I/O BAR, 4 of a memory BAR) are read-only, not address.
    const std::uint32_t type_bits = bar.spec.kind == pci::BarKind::io ? 0x3u : 0xfu;
    address = (address & ~0xffffffffull) | (value & ~type_bits);
  }
  address &= size_mask;
  if (address == bar.address) return std::nullopt;
  const BarMove move{bar.spec.index, bar.address, address};
  bar.address = address;
  return move;
}

std::optional<BarHit> BarRegisters::hit(std::uint64_t at, bool io) const noexcept {
  for (const GuestBar& bar : bars_) {
    if ((bar.spec.kind == pci::BarKind::io) != io) continue;
    if (at >= bar.address && at - bar.address < bar.spec.size) {
      return BarHit{bar.spec.index, at - bar.address};
    }
  }
  return std::nullopt;
}

std::optional<BarHit> BarRegisters::memory_at(std::uint64_t address) const noexcept {
  return hit(address, false);
}

std::optional<BarHit> BarRegisters::io_at(std::uint64_t port) const noexcept {
  return hit(port, true);
}

}  // namespace vfiokit::vmm
