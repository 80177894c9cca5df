// The sysfs model of a PCI function: identity, driver, IOMMU group, BARs, SR-IOV, reset
// methods, and what its config space says (capabilities, MSI, MSI-X, PCIe, power management).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/pci/bdf.h"
#include "vfiokit/pci/config_space.h"

namespace vfiokit::pci {

// One line of sysfs "resource": "0x<start> 0x<end> 0x<flags>".
struct ResourceRange {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint64_t flags = 0;  // IORESOURCE_* bits
  [[nodiscard]] bool empty() const noexcept { return start == 0 && end == 0; }
  [[nodiscard]] std::uint64_t size() const noexcept { return empty() ? 0 : end - start + 1; }
};
// Throws Error on a line that is not three hex numbers, or a range that ends below its start or
// spans the whole 64-bit space (its size would not fit).
std::vector<ResourceRange> parse_resource_file(std::string_view text);

struct Bar {
  unsigned index = 0;
  BarKind kind = BarKind::mem32;
  bool prefetchable = false;
  std::uint64_t address = 0;
  std::uint64_t size = 0;
};
// BARs 0..5 with a non-zero size, typed by the kernel's IORESOURCE flags.
std::vector<Bar> bars_from_resources(std::span<const ResourceRange> ranges);

// Everything vfiokit reads out of config space, parsed without trusting it.
struct ConfigFacts {
  std::size_t size = 0;  // 64 for an unprivileged read, 256 or 4096 as root
  std::optional<ConfigHeader> header;
  std::vector<Capability> capabilities;
  std::vector<ExtendedCapability> extended_capabilities;
  std::optional<MsiCapability> msi;
  std::optional<MsixCapability> msix;
  std::optional<PcieCapability> pcie;
  std::optional<PowerManagementCapability> power_management;
  std::optional<AdvancedFeaturesCapability> advanced_features;
  std::optional<SriovCapability> sriov;
  std::string error;  // why part of it could not be parsed; empty when all of it could
  // Only the 64-byte header was readable: the kernel shows the rest of sysfs "config" to root
  // only, so the capabilities are unknown (not absent, and not damaged).
  bool header_only = false;
};
ConfigFacts parse_config_facts(ConfigBytes config);

struct PciDevice {
  Bdf bdf;
  std::uint16_t vendor_id = 0;
  std::uint16_t device_id = 0;
  std::uint16_t subsystem_vendor_id = 0;
  std::uint16_t subsystem_id = 0;
  std::uint32_t class_code = 0;
  std::uint8_t revision = 0;
  std::optional<std::string> driver;           // the bound driver's name
  std::optional<std::string> driver_override;  // nullopt when unset ("(null)")
  std::optional<unsigned> iommu_group;
  int numa_node = -1;
  bool boot_vga = false;
  std::optional<unsigned> sriov_total_vfs;  // set on SR-IOV physical functions
  std::optional<unsigned> sriov_num_vfs;
  std::optional<Bdf> physfn;               // set on virtual functions
  std::vector<std::string> reset_methods;  // sysfs reset_method, in the kernel's order
  std::vector<Bar> bars;
  std::uint64_t rom_size = 0;
  ConfigFacts config;

  [[nodiscard]] bool is_bridge() const noexcept;  // header type 1/2 or class 06:04
  [[nodiscard]] std::uint8_t base_class() const noexcept {
    return static_cast<std::uint8_t>(class_code >> 16);
  }
  [[nodiscard]] bool is_display() const noexcept { return base_class() == 0x03; }
  [[nodiscard]] bool multifunction() const noexcept;
};

// Every PCI function under sys/bus/pci/devices, sorted.
std::vector<Bdf> list_pci_devices(const HostPaths& paths);
bool pci_device_exists(const HostPaths& paths, const Bdf& bdf);

// How much of config space to read. Each dword read through sysfs is a real config cycle (a
// trapped access under emulation), so callers that only need the header ask for just that.
enum class ConfigDepth { header, full };

// Reads one function. Throws Error (kind failed, naming the BDF) if it does not exist; odd or
// hostile attribute contents become unset fields or ConfigFacts::error, never a crash.
PciDevice read_pci_device(const HostPaths& paths, const Bdf& bdf,
                          ConfigDepth depth = ConfigDepth::full);

std::filesystem::path device_dir(const HostPaths& paths, const Bdf& bdf);

// The driver bound to `bdf` right now, and its driver_override (nullopt when unset: sysfs
// shows "(null)"). Cheap reads for code that watches a device change drivers.
std::optional<std::string> read_driver(const HostPaths& paths, const Bdf& bdf);
std::optional<std::string> read_driver_override(const HostPaths& paths, const Bdf& bdf);

// "1b36": a vendor, device or subsystem ID as lspci -n prints it.
std::string id_hex(std::uint16_t id);
// "0108": base class and subclass of a 24-bit class code, as lspci -n prints them.
std::string class_hex(std::uint32_t class_code);

}  // namespace vfiokit::pci
