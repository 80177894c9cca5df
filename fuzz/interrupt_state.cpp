// The guest-facing interrupt registers the VMM emulates (vmm/interrupt_state.h): the MSI
// capability (MsiState), the MSI-X table (MsixTable) and the MSI-X Message Control word
// (MsixControl), each under a fuzzed stream of guest reads and writes, checked against a model.
//
// Invariants: read-only bits (Multiple Message Capable, 64-bit, per-vector masking, the MSI-X
// table size) never change; every register reads back what the guest wrote, less its reserved
// bits, and bytes outside the registers read as zero; each write reports exactly what changed
// (enable, message, mask); the enabled vector count is a power of two no larger than what the
// device can do; MSI-X accesses that are not 4 or 8 bytes, aligned and inside the table read as
// zero and write nothing, wherever they point; only the mask bit of Vector Control is kept.
#include <array>
#include <cstring>

#include "fuzz/fuzz.h"
#include "vfiokit/vmm/interrupt_state.h"

namespace vfiokit::vmm {
namespace {

void msi(FuzzedDataProvider& data) {
  pci::MsiCapability capability;
  capability.vectors_capable = 1u << data.ConsumeIntegralInRange<unsigned>(0, 5);
  capability.address_64bit = data.ConsumeBool();
  capability.per_vector_masking = data.ConsumeBool();
  MsiState state(capability);

  // The model: the registers as the spec lays them out after the capability header.
  const unsigned length =
      (capability.address_64bit ? 14u : 10u) + (capability.per_vector_masking ? 10u : 0u);
  const unsigned data_at = capability.address_64bit ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32;
  const unsigned mask_at = capability.address_64bit ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32;
  std::array<std::uint8_t, 32> model{};
  // Which bits of each byte the guest may change.
  std::array<std::uint8_t, 32> writable{};
  writable[PCI_MSI_FLAGS] = PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE;
  writable[PCI_MSI_ADDRESS_LO] = 0xfc;
  for (unsigned i = 1; i < (capability.address_64bit ? 8u : 4u); ++i) {
    writable[PCI_MSI_ADDRESS_LO + i] = 0xff;
  }
  writable[data_at] = writable[data_at + 1] = 0xff;
  if (capability.per_vector_masking) {
    for (unsigned i = 0; i < 4; ++i) writable[mask_at + i] = 0xff;
  }
  unsigned capable_log2 = 0;
  while ((1u << capable_log2) < capability.vectors_capable) ++capable_log2;
  const unsigned control = capable_log2 << 1 |
                           (capability.address_64bit ? PCI_MSI_FLAGS_64BIT : 0u) |
                           (capability.per_vector_masking ? PCI_MSI_FLAGS_MASKBIT : 0u);
  model[PCI_MSI_FLAGS] = static_cast<std::uint8_t>(control);
  model[PCI_MSI_FLAGS + 1] = static_cast<std::uint8_t>(control >> 8);

  while (data.remaining_bytes() > 0) {
    const auto offset = data.ConsumeIntegralInRange<std::uint32_t>(0, 31);
    if (data.ConsumeBool()) {
      const auto value = data.ConsumeIntegral<std::uint8_t>();
      const bool was_enabled = model[PCI_MSI_FLAGS] & PCI_MSI_FLAGS_ENABLE;
      const std::uint8_t before = model[offset];
      model[offset] =
          static_cast<std::uint8_t>((before & ~writable[offset]) | (value & writable[offset]));
      const InterruptChange change = state.write_byte(offset, value);
      const bool changed = model[offset] != before;
      const bool is_mask =
          capability.per_vector_masking && offset >= mask_at && offset < mask_at + 4;
      if (offset == PCI_MSI_FLAGS) {
        const bool enabled = model[PCI_MSI_FLAGS] & PCI_MSI_FLAGS_ENABLE;
        FUZZ_CHECK(change.enable == (enabled != was_enabled));
        FUZZ_CHECK(change.message == (!change.enable && changed));
        FUZZ_CHECK(!change.mask);
      } else {
        FUZZ_CHECK(!change.enable);
        FUZZ_CHECK(change.mask == (is_mask && changed));
        FUZZ_CHECK(change.message == (!is_mask && changed));
      }
    }
    for (std::uint32_t i = 0; i < 32; ++i) FUZZ_CHECK(state.read_byte(i) == model[i]);
    FUZZ_CHECK(state.owns(offset) == (offset >= PCI_MSI_FLAGS && offset < length));
    FUZZ_CHECK(state.enabled() == ((model[PCI_MSI_FLAGS] & PCI_MSI_FLAGS_ENABLE) != 0));
    const unsigned vectors = state.vectors();
    FUZZ_CHECK(vectors >= 1 && vectors <= capability.vectors_capable &&
               (vectors & (vectors - 1)) == 0);
    std::uint64_t address = 0;
    for (unsigned i = 0; i < 8; ++i)
      address |= std::uint64_t{model[PCI_MSI_ADDRESS_LO + i]} << (8 * i);
    if (!capability.address_64bit) address &= 0xffffffffu;
    const auto message_data = static_cast<std::uint32_t>(model[data_at] | model[data_at + 1] << 8);
    for (unsigned v = 0; v < vectors; ++v) {
      const msix::MsiMessage message = state.message(v);
      FUZZ_CHECK(message.address == address);
      FUZZ_CHECK((message.data & ~(vectors - 1)) == (message_data & ~(vectors - 1)));
      FUZZ_CHECK((message.data & (vectors - 1)) == v);
      const bool mask_bit = (model[mask_at + v / 8] >> (v % 8)) & 1;
      FUZZ_CHECK(state.masked(v) == (capability.per_vector_masking && mask_bit));
    }
  }
}

void msix_table(FuzzedDataProvider& data) {
  const auto size = data.ConsumeIntegralInRange<std::uint32_t>(1, 2048);
  MsixTable table(size);
  std::vector<std::array<std::uint32_t, 4>> model(size, {0, 0, 0, PCI_MSIX_ENTRY_CTRL_MASKBIT});
  FUZZ_CHECK(table.size() == size && table.bytes() == 16ull * size);

  while (data.remaining_bytes() > 0) {
    std::uint64_t offset = 0;
    switch (data.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
        offset = data.ConsumeIntegralInRange<std::uint64_t>(0, table.bytes() + 16);
        break;
      case 1:
        offset = data.ConsumeIntegralInRange<std::uint64_t>(0, size - 1) * 16 +
                 4 * data.ConsumeIntegralInRange<std::uint64_t>(0, 3);
        break;
      case 2:
        offset = ~std::uint64_t{0} - data.ConsumeIntegralInRange<std::uint64_t>(0, 64);
        break;
      default:
        offset = data.ConsumeIntegral<std::uint64_t>();
        break;
    }
    const auto width = data.ConsumeBool() ? (data.ConsumeBool() ? 4u : 8u)
                                          : data.ConsumeIntegralInRange<std::size_t>(0, 16);
    const bool valid = (width == 4 || width == 8) && offset % width == 0 &&
                       offset <= table.bytes() && width <= table.bytes() - offset;
    std::array<std::uint8_t, 16> buffer{};
    const std::span<std::uint8_t> access(buffer.data(), width);
    if (data.ConsumeBool()) {
      for (auto& b : access) b = data.ConsumeIntegral<std::uint8_t>();
      std::uint32_t vector = 0xffffffffu;
      const InterruptChange change = table.write(offset, access, vector);
      FUZZ_CHECK(!change.enable);
      if (!valid) {
        FUZZ_CHECK(!change.any());
      } else {
        FUZZ_CHECK(vector == offset / 16);
        bool message = false, mask = false;
        for (std::size_t i = 0; i < width; i += 4) {
          std::uint32_t word = 0;
          std::memcpy(&word, buffer.data() + i, 4);
          const std::size_t index = ((offset + i) % 16) / 4;
          auto& slot = model[vector][index];
          if (index == 3) {
            word &= PCI_MSIX_ENTRY_CTRL_MASKBIT;
            mask |= slot != word;
          } else {
            message |= slot != word;
          }
          slot = word;
        }
        FUZZ_CHECK(change.message == message && change.mask == mask);
      }
    } else {
      std::memset(buffer.data(), 0xee, buffer.size());
      table.read(offset, access);
      for (std::size_t i = 0; i < width; i += 4) {
        std::uint32_t word = 0;
        std::memcpy(&word, buffer.data() + i, std::min<std::size_t>(4, width - i));
        if (!valid) {
          for (std::size_t b = i; b < width && b < i + 4; ++b) FUZZ_CHECK(buffer[b] == 0);
        } else {
          FUZZ_CHECK(word == model[(offset + i) / 16][((offset + i) % 16) / 4]);
        }
      }
    }
    const auto v = data.ConsumeIntegralInRange<std::uint32_t>(0, size - 1);
    FUZZ_CHECK(table.masked(v) == ((model[v][3] & PCI_MSIX_ENTRY_CTRL_MASKBIT) != 0));
    const msix::MsiMessage message = table.message(v);
    FUZZ_CHECK(message.address == (std::uint64_t{model[v][1]} << 32 | model[v][0]));
    FUZZ_CHECK(message.data == model[v][2]);
  }
}

void msix_control(FuzzedDataProvider& data) {
  MsixControl control;
  control.table_size_field = data.ConsumeIntegralInRange<std::uint16_t>(0, 2047);
  const std::uint16_t size_field = control.table_size_field;
  while (data.remaining_bytes() > 0) {
    const auto value = data.ConsumeIntegral<std::uint8_t>();
    const bool was_enabled = control.enabled, was_masked = control.function_masked;
    const InterruptChange change = control.write_high_byte(value);
    FUZZ_CHECK(control.enabled == ((value & (PCI_MSIX_FLAGS_ENABLE >> 8)) != 0));
    FUZZ_CHECK(control.function_masked == ((value & (PCI_MSIX_FLAGS_MASKALL >> 8)) != 0));
    FUZZ_CHECK(change.enable == (control.enabled != was_enabled));
    FUZZ_CHECK(change.mask == (control.function_masked != was_masked));
    FUZZ_CHECK(!change.message);
    FUZZ_CHECK((control.value() & PCI_MSIX_FLAGS_QSIZE) == size_field);
    FUZZ_CHECK((control.value() &
                ~(PCI_MSIX_FLAGS_QSIZE | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)) == 0);
  }
}

}  // namespace
}  // namespace vfiokit::vmm

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  switch (data.ConsumeIntegralInRange<int>(0, 2)) {
    case 0:
      vfiokit::vmm::msi(data);
      break;
    case 1:
      vfiokit::vmm::msix_table(data);
      break;
    default:
      vfiokit::vmm::msix_control(data);
      break;
  }
  return 0;
}
