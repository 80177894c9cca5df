#include "vfiokit/vmm/interrupt_state.h"

#include <cstring>

#include "vfiokit/base/error.h"

namespace vfiokit::vmm {

MsiState::MsiState(const pci::MsiCapability& capability) : capability_(capability) {
  // The read-only bits: Multiple Message Capable, 64-bit, per-vector masking.
  unsigned log2 = 0;
  while ((1u << log2) < capability.vectors_capable) ++log2;
  control_ =
      static_cast<std::uint16_t>(log2 << 1 | (capability.address_64bit ? PCI_MSI_FLAGS_64BIT : 0) |
                                 (capability.per_vector_masking ? PCI_MSI_FLAGS_MASKBIT : 0));
}

std::uint32_t MsiState::length() const noexcept {
  return (capability_.address_64bit ? 14u : 10u) + (capability_.per_vector_masking ? 10u : 0u);
}

bool MsiState::owns(std::uint32_t offset) const noexcept {
  return offset >= PCI_MSI_FLAGS && offset < length();
}

unsigned MsiState::vectors() const noexcept {
  const unsigned log2 = (control_ & PCI_MSI_FLAGS_QSIZE) >> 4;
  return std::min(1u << std::min(log2, 5u), capability_.vectors_capable);
}

std::uint8_t MsiState::read_byte(std::uint32_t offset) const {
  auto byte_of = [](std::uint64_t value, std::uint32_t index) {
    return static_cast<std::uint8_t>(value >> (8 * index));
  };
  if (offset == PCI_MSI_FLAGS || offset == PCI_MSI_FLAGS + 1) {
    return byte_of(control_, offset - PCI_MSI_FLAGS);
  }
  if (offset >= PCI_MSI_ADDRESS_LO && offset < PCI_MSI_ADDRESS_LO + 4) {
    return byte_of(address_, offset - PCI_MSI_ADDRESS_LO);
  }
  if (capability_.address_64bit && offset >= PCI_MSI_ADDRESS_HI &&
      offset < PCI_MSI_ADDRESS_HI + 4) {
    return byte_of(address_ >> 32, offset - PCI_MSI_ADDRESS_HI);
  }
  if (offset >= data_offset() && offset < data_offset() + 2) {
    return byte_of(data_, offset - data_offset());
  }
  if (capability_.per_vector_masking && offset >= mask_offset() && offset < mask_offset() + 4) {
    return byte_of(mask_bits_, offset - mask_offset());
  }
  return 0;  // reserved bytes and the pending bits (never set: pending lives in the eventfds)
}

InterruptChange MsiState::write_byte(std::uint32_t offset, std::uint8_t value) {
  InterruptChange change;
  auto set_byte = [&](auto& field, std::uint32_t index, auto mask) {
    using T = std::remove_reference_t<decltype(field)>;
    const T before = field;
    const T shifted = static_cast<T>(static_cast<T>(value) << (8 * index));
    const T bits = static_cast<T>(static_cast<T>(0xff) << (8 * index)) & static_cast<T>(mask);
    field = static_cast<T>((field & ~bits) | (shifted & bits));
    return field != before;
  };
  if (offset == PCI_MSI_FLAGS) {
    const bool was = enabled();
    const std::uint16_t before = control_;
    // Only enable and Multiple Message Enable are the guest's to write.
    set_byte(control_, 0, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    change.enable = was != enabled();
    change.message = !change.enable && before != control_;  // MME changed
  } else if (offset >= PCI_MSI_ADDRESS_LO && offset < PCI_MSI_ADDRESS_LO + 4) {
    change.message =
        set_byte(address_, offset - PCI_MSI_ADDRESS_LO, 0xfffffffcull);  // bits 1:0 reserved
  } else if (capability_.address_64bit && offset >= PCI_MSI_ADDRESS_HI &&
             offset < PCI_MSI_ADDRESS_HI + 4) {
    change.message = set_byte(address_, offset - PCI_MSI_ADDRESS_HI + 4, ~0ull);
  } else if (offset >= data_offset() && offset < data_offset() + 2) {
    change.message = set_byte(data_, offset - data_offset(), 0xffff);
  } else if (capability_.per_vector_masking && offset >= mask_offset() &&
             offset < mask_offset() + 4) {
    change.mask = set_byte(mask_bits_, offset - mask_offset(), 0xffffffffu);
  }
  return change;
}

msix::MsiMessage MsiState::message(unsigned vector) const noexcept {
  // With multiple messages the device replaces the low log2(vectors) bits of data.
  const std::uint32_t low_bits = vectors() - 1;
  return {address_, (data_ & ~low_bits) | (vector & low_bits)};
}

std::optional<std::uint32_t> MsiState::pending_offset() const noexcept {
  if (!capability_.per_vector_masking) return std::nullopt;
  return mask_offset() + 4;
}

bool MsiState::masked(unsigned vector) const noexcept {
  return capability_.per_vector_masking && ((mask_bits_ >> vector) & 1u);
}

MsixTable::MsixTable(std::uint32_t size) : entries_(size) {}

bool MsixTable::valid_access(std::uint64_t offset, std::size_t width) const noexcept {
  // Compared without `offset + width`, which a guest's offset can make wrap around.
  return (width == 4 || width == 8) && offset % width == 0 && offset <= bytes() &&
         width <= bytes() - offset;
}

void MsixTable::read(std::uint64_t offset, std::span<std::uint8_t> data) const {
  std::memset(data.data(), 0, data.size());
  if (!valid_access(offset, data.size())) {
    return;
  }
  for (std::size_t i = 0; i < data.size(); i += 4) {
    const Entry& e = entries_[(offset + i) / PCI_MSIX_ENTRY_SIZE];
    const std::uint32_t words[4] = {e.address_low, e.address_high, e.data, e.control};
    std::memcpy(data.data() + i, &words[((offset + i) % PCI_MSIX_ENTRY_SIZE) / 4], 4);
  }
}

InterruptChange MsixTable::write(std::uint64_t offset, std::span<const std::uint8_t> data,
                                 std::uint32_t& vector) {
  InterruptChange change;
  if (!valid_access(offset, data.size())) {
    return change;
  }
  vector = static_cast<std::uint32_t>(offset / PCI_MSIX_ENTRY_SIZE);
  Entry& e = entries_[vector];
  for (std::size_t i = 0; i < data.size(); i += 4) {
    std::uint32_t word = 0;
    std::memcpy(&word, data.data() + i, 4);
    switch (((offset + i) % PCI_MSIX_ENTRY_SIZE) / 4) {
      case 0:
        change.message |= e.address_low != word;
        e.address_low = word;
        break;
      case 1:
        change.message |= e.address_high != word;
        e.address_high = word;
        break;
      case 2:
        change.message |= e.data != word;
        e.data = word;
        break;
      default:
        change.mask |= ((e.control ^ word) & PCI_MSIX_ENTRY_CTRL_MASKBIT) != 0;
        e.control = word & PCI_MSIX_ENTRY_CTRL_MASKBIT;  // the only bit defined
        break;
    }
  }
  return change;
}

msix::MsiMessage MsixTable::message(std::uint32_t vector) const {
  const Entry& e = entries_.at(vector);
  return {std::uint64_t{e.address_high} << 32 | e.address_low, e.data};
}

bool MsixTable::masked(std::uint32_t vector) const {
  return (entries_.at(vector).control & PCI_MSIX_ENTRY_CTRL_MASKBIT) != 0;
}

InterruptChange MsixControl::write_high_byte(std::uint8_t value) {
  InterruptChange change;
  const bool enable = value & (PCI_MSIX_FLAGS_ENABLE >> 8);
  const bool mask = value & (PCI_MSIX_FLAGS_MASKALL >> 8);
  change.enable = enable != enabled;
  change.mask = mask != function_masked;
  enabled = enable;
  function_masked = mask;
  return change;
}

}  // namespace vfiokit::vmm
