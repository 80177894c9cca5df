#include "vfiokit/vmm/pci_bus.h"

#include <cstring>

#include "vfiokit/base/error.h"

namespace vfiokit::vmm {

ConfigAddress decode_config_address(std::uint32_t value) {
  return {(value >> 31) != 0, static_cast<std::uint8_t>(value >> 16),
          static_cast<std::uint8_t>((value >> 11) & 0x1f),
          static_cast<std::uint8_t>((value >> 8) & 0x7), static_cast<std::uint8_t>(value & 0xfc)};
}

std::optional<std::uint32_t> intx_gsi(std::uint8_t device, std::uint8_t pin) {
  if (pin == 0 || pin > 4) return std::nullopt;
  return kFirstPirqGsi + (device + pin - 1u) % 4u;
}

HostBridge::HostBridge() {
  const std::uint8_t header[] = {
      0x86, 0x80, 0xc0, 0x29,  // Intel 82G33 DRAM controller, as QEMU's q35 presents
      0x06, 0x00, 0x00, 0x00,  // command: memory and bus master; status
      0x00, 0x00, 0x00, 0x06,  // revision, class 06:00:00 (host bridge)
  };
  std::memcpy(config_.data(), header, sizeof header);
}

std::uint32_t HostBridge::config_read(std::uint32_t offset, std::uint32_t size) {
  std::uint32_t value = 0;
  std::memcpy(&value, config_.data() + offset, size);
  return value;
}

PciBus::PciBus() { attach(0, 0, host_bridge_); }

void PciBus::attach(std::uint8_t device, std::uint8_t function, PciFunction& target) {
  if (device > 31 || function > 7) {
    throw Error("PCI bus", "no slot " + std::to_string(device) + "." + std::to_string(function));
  }
  functions_[static_cast<std::uint8_t>(device << 3 | function)] = &target;
}

PciFunction* PciBus::selected(std::uint8_t& offset) const {
  const ConfigAddress address = decode_config_address(address_);
  if (!address.enabled || address.bus != 0) return nullptr;
  offset = address.offset;
  const auto it =
      functions_.find(static_cast<std::uint8_t>(address.device << 3 | address.function));
  return it == functions_.end() ? nullptr : it->second;
}

void PciBus::io(std::uint16_t port, bool write, std::span<std::uint8_t> data) {
  if (port >= kConfigAddressPort && port < kConfigAddressPort + 4) {
    // Only whole-dword accesses to 0xcf8 are the config address (others are legacy ports).
    if (port == kConfigAddressPort && data.size() == 4) {
      if (write) {
        std::memcpy(&address_, data.data(), 4);
      } else {
        std::memcpy(data.data(), &address_, 4);
      }
    } else if (!write) {
      std::memset(data.data(), 0xff, data.size());
    }
    return;
  }
  const auto byte = static_cast<std::uint32_t>(port - kConfigDataPort);  // 0..3
  std::uint8_t offset = 0;
  PciFunction* function = selected(offset);
  const auto size = static_cast<std::uint32_t>(data.size());
  if (byte + size > 4 || (size != 1 && size != 2 && size != 4)) {
    if (!write) std::memset(data.data(), 0xff, data.size());
    return;
  }
  if (write) {
    if (!function) return;
    std::uint32_t value = 0;
    std::memcpy(&value, data.data(), size);
    function->config_write(offset + byte, size, value);
  } else {
    const std::uint32_t value = function ? function->config_read(offset + byte, size) : 0xffffffffu;
    std::memcpy(data.data(), &value, size);
  }
}

}  // namespace vfiokit::vmm
