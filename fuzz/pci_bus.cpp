// The VMM's PCI bus (configuration mechanism #1) under a fuzzed stream of guest port accesses
// to 0xcf8-0xcff of every width, with functions attached at fuzzed slots.
//
// Invariants: the address register reads back what was last written to it as a whole dword;
// every other access to 0xcf8-0xcfb reads all ones; data reads of absent functions, other buses,
// a disabled address, or widths the mechanism cannot express read all ones and write nothing;
// a function sees only 1, 2 or 4 byte accesses that never cross a dword and stay inside its
// 256 bytes, at the register the address selected plus the port's byte, with the guest's data.
#include <array>
#include <cstring>
#include <map>
#include <optional>

#include "fuzz/fuzz.h"
#include "vfiokit/vmm/pci_bus.h"

namespace vfiokit::vmm {
namespace {

struct Access {
  std::uint32_t offset, size, value;
};

// Answers every read with a value made of where it was read; remembers the last write.
class ProbeFunction final : public PciFunction {
 public:
  std::uint32_t config_read(std::uint32_t offset, std::uint32_t size) override {
    check(offset, size);
    return pattern(offset, size);
  }
  void config_write(std::uint32_t offset, std::uint32_t size, std::uint32_t value) override {
    check(offset, size);
    FUZZ_CHECK(size == 4 || value >> (8 * size) == 0);
    last_write = Access{offset, size, value};
  }
  static std::uint32_t pattern(std::uint32_t offset, std::uint32_t size) {
    const std::uint32_t value = 0x5a000000u | offset << 8 | size;
    return size == 4 ? value : value & ((1u << (8 * size)) - 1);
  }
  std::optional<Access> last_write;

 private:
  static void check(std::uint32_t offset, std::uint32_t size) {
    FUZZ_CHECK(size == 1 || size == 2 || size == 4);
    FUZZ_CHECK(offset % 4 + size <= 4);
    FUZZ_CHECK(offset + size <= 256);
  }
};

}  // namespace
}  // namespace vfiokit::vmm

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::vmm;
  FuzzedDataProvider data(bytes, size);
  PciBus bus;
  HostBridge bridge;  // a second one to know what the bus's own must answer
  std::array<ProbeFunction, 4> probes;
  std::map<std::uint8_t, ProbeFunction*> attached;  // devfn -> probe
  const auto count = data.ConsumeIntegralInRange<std::size_t>(0, probes.size());
  for (std::size_t i = 0; i < count; ++i) {
    const auto device = data.ConsumeIntegralInRange<std::uint8_t>(0, 31);
    const auto function = data.ConsumeIntegralInRange<std::uint8_t>(0, 7);
    bus.attach(device, function, probes[i]);
    attached[static_cast<std::uint8_t>(device << 3 | function)] = &probes[i];
  }
  std::uint32_t address = 0;

  while (data.remaining_bytes() > 0) {
    const auto port =
        static_cast<std::uint16_t>(kConfigAddressPort + data.ConsumeIntegralInRange<int>(0, 7));
    const auto width = data.ConsumeIntegralInRange<std::size_t>(0, 8);
    const bool write = data.ConsumeBool();
    std::array<std::uint8_t, 8> buffer{};
    const std::span<std::uint8_t> access(buffer.data(), width);
    std::uint32_t value = 0;
    if (port == kConfigAddressPort && width == 4 && write && data.ConsumeBool()) {
      // Mostly enabled addresses on bus 0, so that the functions are reached.
      value = 0x80000000u | data.ConsumeIntegralInRange<std::uint32_t>(0, 0xffff);
    } else {
      value = data.ConsumeIntegral<std::uint32_t>();
    }
    if (write) std::memcpy(buffer.data(), &value, std::min<std::size_t>(width, 4));
    for (auto& [devfn, probe] : attached) probe->last_write.reset();
    bus.io(port, write, access);

    if (port < kConfigDataPort) {
      if (port == kConfigAddressPort && width == 4) {
        if (write) {
          address = value;
        } else {
          std::uint32_t read = 0;
          std::memcpy(&read, buffer.data(), 4);
          FUZZ_CHECK(read == address);
        }
      } else if (!write) {
        for (std::uint8_t byte : access) FUZZ_CHECK(byte == 0xff);
      }
      continue;
    }
    const ConfigAddress selected = decode_config_address(address);
    const std::uint32_t byte = port - kConfigDataPort;
    const auto devfn = static_cast<std::uint8_t>(selected.device << 3 | selected.function);
    const bool expressible = (width == 1 || width == 2 || width == 4) && byte + width <= 4;
    const bool on_bus = selected.enabled && selected.bus == 0;
    const auto it = attached.find(devfn);
    ProbeFunction* probe = on_bus && it != attached.end() ? it->second : nullptr;
    const bool bridge_selected = on_bus && devfn == 0 && !probe;
    const std::uint32_t offset = selected.offset + byte;

    if (write) {
      for (auto& [other, p] : attached) {
        if (p != probe || !expressible) FUZZ_CHECK(!p->last_write);
      }
      if (probe && expressible) {
        const std::uint32_t expected = width == 4 ? value : value & ((1u << (8 * width)) - 1);
        FUZZ_CHECK(probe->last_write && probe->last_write->offset == offset &&
                   probe->last_write->size == width && probe->last_write->value == expected);
      }
      continue;
    }
    std::uint32_t read = 0;
    std::memcpy(&read, buffer.data(), std::min<std::size_t>(width, 4));
    if (!expressible || (!probe && !bridge_selected)) {
      for (std::uint8_t b : access) FUZZ_CHECK(b == 0xff);
    } else if (probe) {
      FUZZ_CHECK(read == ProbeFunction::pattern(offset, static_cast<std::uint32_t>(width)));
    } else {
      const std::uint32_t expected = bridge.config_read(offset, static_cast<std::uint32_t>(width));
      FUZZ_CHECK(std::memcmp(buffer.data(), &expected, width) == 0);
    }
  }
  return 0;
}
