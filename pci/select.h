// Choosing devices the way lspci and dpdk-devbind users already do: `-s [[domain:]bus:][slot]
// [.func]`, `-d [vendor]:[device][:class[:prog-if]]` (parsed by libpci, exactly as lspci parses
// them), class names (`--class display`), and network interface names where a PCI address is
// expected (`vfiokit bind eth1`).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/pci/bdf.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::pci {

// Every field is "any" when unset. A device matches when it matches every set field, and, when
// base_classes is not empty, its base class is one of them.
struct DeviceFilter {
  std::optional<std::uint32_t> domain;
  std::optional<std::uint8_t> bus;
  std::optional<std::uint8_t> slot;
  std::optional<std::uint8_t> function;
  std::optional<std::uint16_t> vendor_id;
  std::optional<std::uint16_t> device_id;
  // Base class and subclass (the upper 16 bits of the class code); the mask says which bits
  // count (lspci's "::03xx" compares the base class only).
  std::optional<std::uint16_t> class_id;
  std::uint16_t class_mask = 0xffff;
  std::optional<std::uint8_t> prog_if;
  std::vector<std::uint8_t> base_classes;

  [[nodiscard]] bool selects_everything() const noexcept;
};

// lspci -s syntax into `filter`. Throws a usage Error naming the text and libpci's reason.
void parse_slot_filter(std::string_view text, DeviceFilter& filter);
// lspci -d syntax into `filter`. Throws a usage Error naming the text and libpci's reason.
void parse_id_filter(std::string_view text, DeviceFilter& filter);

// The names `--class` accepts, each a PCI base class (PCI Code and ID Assignment spec).
struct ClassName {
  std::string_view name;
  std::uint8_t base_class;
};
std::span<const ClassName> class_names() noexcept;
// A name from class_names(), or a base class in hex ("03", "0x03"). Throws a usage Error that
// lists the names.
std::uint8_t parse_base_class(std::string_view text);

bool matches(const DeviceFilter& filter, const Bdf& bdf, std::uint16_t vendor_id,
             std::uint16_t device_id, std::uint32_t class_code) noexcept;
bool matches(const DeviceFilter& filter, const PciDevice& device) noexcept;

// A device named on the command line: a PCI address ("0000:01:00.0", "01:00.0"), or the name
// of a network interface whose device is a PCI function ("eth1", "enp1s0f1"). Throws a usage
// Error naming the text when it is neither, and says why when it is an interface that is not
// on PCI (a bridge, a bond, a USB adapter).
Bdf resolve_device_name(const HostPaths& paths, std::string_view text);

// The network interfaces of one PCI function (sys/bus/pci/devices/BDF/net/*), sorted.
std::vector<std::string> network_interfaces_of(const HostPaths& paths, const Bdf& bdf);

}  // namespace vfiokit::pci
