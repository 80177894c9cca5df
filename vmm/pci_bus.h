// The VMM's PCI bus: configuration mechanism #1 (address at port 0xcf8, data at 0xcfc-0xcff),
// a host bridge at 00:00.0, and the functions attached to it. Functions that do not exist read
// as all ones, as on real hardware.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>

namespace vfiokit::vmm {

inline constexpr std::uint16_t kConfigAddressPort = 0xcf8;
inline constexpr std::uint16_t kConfigDataPort = 0xcfc;

struct ConfigAddress {
  bool enabled = false;  // bit 31
  std::uint8_t bus = 0;
  std::uint8_t device = 0;    // 0..31
  std::uint8_t function = 0;  // 0..7
  std::uint8_t offset = 0;    // register, dword aligned
  bool operator==(const ConfigAddress&) const = default;
};
ConfigAddress decode_config_address(std::uint32_t value);

// INTx routing of the VMM's host bridge, as a PC chipset in APIC mode has it: the four PCI
// interrupt lines PIRQA#..PIRQD# are IOAPIC inputs 16..19 (level-triggered, active low, no PIC
// route), and a function's pin (1 INTA# .. 4 INTD#) reaches line (device + pin - 1) mod 4, the
// conventional swizzle that spreads slots over the lines. Firmware writes the result into the
// function's Interrupt Line register; the VMM does the same (vmm/passthrough.h). Pure; nullopt
// for pin 0 (no INTx) or a pin above 4.
inline constexpr std::uint32_t kFirstPirqGsi = 16;
std::optional<std::uint32_t> intx_gsi(std::uint8_t device, std::uint8_t pin);

// One function as the guest sees it. Accesses are 1, 2 or 4 bytes wide and never cross a
// dword (mechanism #1 cannot express that).
class PciFunction {
 public:
  virtual ~PciFunction() = default;
  virtual std::uint32_t config_read(std::uint32_t offset, std::uint32_t size) = 0;
  virtual void config_write(std::uint32_t offset, std::uint32_t size, std::uint32_t value) = 0;
};

// A plain 64-byte config space of a host bridge: IDs, class 06:00, nothing else.
class HostBridge final : public PciFunction {
 public:
  HostBridge();
  std::uint32_t config_read(std::uint32_t offset, std::uint32_t size) override;
  void config_write(std::uint32_t, std::uint32_t, std::uint32_t) override {}

 private:
  std::array<std::uint8_t, 256> config_{};
};

class PciBus {
 public:
  PciBus();
  // Bus 0 only. `function` must outlive the bus.
  void attach(std::uint8_t device, std::uint8_t function, PciFunction& target);
  // Port accesses from the guest: the address register, or the data window.
  void io(std::uint16_t port, bool write, std::span<std::uint8_t> data);

 private:
  PciFunction* selected(std::uint8_t& offset) const;
  HostBridge host_bridge_;
  std::map<std::uint8_t, PciFunction*> functions_;  // devfn -> function
  std::uint32_t address_ = 0;
};

}  // namespace vfiokit::vmm
