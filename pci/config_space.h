// PCI configuration space, parsed from bytes. Pure functions over spans: no I/O, no trust.
// Every read is bounds-checked, capability walks stop at loops and bad pointers, and a
// truncated space (an unprivileged read of sysfs "config" gives only 64 bytes) is an error,
// never a crash. Layouts follow the PCI Local Bus 3.0 and PCI Express Base specifications;
// register offsets and bits are the kernel's names from <linux/pci_regs.h>, everywhere in vfiokit.
#pragma once

#include <linux/pci_regs.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace vfiokit::pci {

using ConfigBytes = std::span<const std::uint8_t>;

inline constexpr std::size_t kConfigHeaderSize = PCI_STD_HEADER_SIZEOF;
inline constexpr std::size_t kLegacyConfigSize = PCI_CFG_SPACE_SIZE;
inline constexpr std::size_t kExtendedConfigSize = PCI_CFG_SPACE_EXP_SIZE;

// Standard capability IDs (PCI Code and ID Assignment spec).
enum CapabilityId : std::uint8_t {
  kCapPowerManagement = PCI_CAP_ID_PM,
  kCapMsi = PCI_CAP_ID_MSI,
  kCapVendorSpecific = PCI_CAP_ID_VNDR,
  kCapPciExpress = PCI_CAP_ID_EXP,
  kCapMsix = PCI_CAP_ID_MSIX,
  kCapAdvancedFeatures = PCI_CAP_ID_AF,
};
// Extended capability IDs.
enum ExtendedCapabilityId : std::uint16_t {
  kExtCapAer = PCI_EXT_CAP_ID_ERR,
  kExtCapAri = PCI_EXT_CAP_ID_ARI,
  kExtCapSriov = PCI_EXT_CAP_ID_SRIOV,
  kExtCapResizableBar = PCI_EXT_CAP_ID_REBAR,
};

// Little-endian reads that throw vfiokit::Error ("parse config space") past the end.
std::uint8_t config_read8(ConfigBytes config, std::size_t offset);
std::uint16_t config_read16(ConfigBytes config, std::size_t offset);
std::uint32_t config_read32(ConfigBytes config, std::size_t offset);

struct ConfigHeader {
  std::uint16_t vendor_id = 0;
  std::uint16_t device_id = 0;
  std::uint16_t command = 0;
  std::uint16_t status = 0;
  std::uint8_t revision = 0;
  std::uint32_t class_code = 0;  // base class << 16 | subclass << 8 | programming interface
  std::uint8_t header_type = 0;  // 0 endpoint, 1 PCI-PCI bridge, 2 CardBus bridge
  bool multifunction = false;
  std::uint16_t subsystem_vendor_id = 0;  // type 0 only
  std::uint16_t subsystem_id = 0;         // type 0 only
  std::uint8_t interrupt_pin = 0;         // 0 none, 1..4 INTA..INTD
  bool has_capability_list = false;       // status bit 4
};

// Needs the 64-byte header.
ConfigHeader parse_config_header(ConfigBytes config);

struct Capability {
  std::uint8_t id = 0;
  std::uint16_t offset = 0;
};
struct ExtendedCapability {
  std::uint16_t id = 0;
  std::uint8_t version = 0;
  std::uint16_t offset = 0;
};

// The standard list from the Capabilities Pointer (0x34). Throws on a loop, a pointer into the
// header or past the end, or more entries than can fit.
std::vector<Capability> walk_capabilities(ConfigBytes config);
// The extended list from 0x100; empty when the space is only 256 bytes or holds no list
// (header 0 or all ones). Throws on a loop, a pointer below 0x100 or past the end.
std::vector<ExtendedCapability> walk_extended_capabilities(ConfigBytes config);

std::optional<std::uint16_t> find_capability(ConfigBytes config, std::uint8_t id);
std::optional<std::uint16_t> find_extended_capability(ConfigBytes config, std::uint16_t id);

struct MsiCapability {
  std::uint16_t offset = 0;
  unsigned vectors_capable = 1;  // 1, 2, 4, 8, 16 or 32 (Multiple Message Capable)
  unsigned vectors_enabled = 1;  // Multiple Message Enable
  bool enabled = false;
  bool address_64bit = false;
  bool per_vector_masking = false;
};
MsiCapability parse_msi(ConfigBytes config, std::uint16_t offset);

struct MsixCapability {
  std::uint16_t offset = 0;
  unsigned table_size = 0;  // number of vectors, 1..2048
  std::uint8_t table_bar = 0;
  std::uint32_t table_offset = 0;
  std::uint8_t pba_bar = 0;
  std::uint32_t pba_offset = 0;
  bool enabled = false;
  bool function_masked = false;
  // The table holds 16 bytes per vector; the Pending Bit Array one bit per vector, in qwords.
  [[nodiscard]] std::uint64_t table_bytes() const noexcept {
    return std::uint64_t{PCI_MSIX_ENTRY_SIZE} * table_size;
  }
  [[nodiscard]] std::uint64_t pba_bytes() const noexcept {
    return 8 * ((std::uint64_t{table_size} + 63) / 64);
  }
};
// Throws if a BAR indicator names a reserved value (6 or 7).
MsixCapability parse_msix(ConfigBytes config, std::uint16_t offset);

// PCI Express Capabilities register, Device/Port Type field.
enum class PciePortType : std::uint8_t {
  endpoint = 0x0,
  legacy_endpoint = 0x1,
  rc_integrated_endpoint = 0x9,
  rc_event_collector = 0xa,
  root_port = 0x4,
  upstream_port = 0x5,
  downstream_port = 0x6,
  pcie_to_pci_bridge = 0x7,
  pci_to_pcie_bridge = 0x8,
};
struct PcieCapability {
  std::uint16_t offset = 0;
  std::uint8_t version = 0;
  std::uint8_t port_type = 0;         // PciePortType value
  bool function_level_reset = false;  // Device Capabilities bit 28
};
PcieCapability parse_pcie(ConfigBytes config, std::uint16_t offset);

struct PowerManagementCapability {
  std::uint16_t offset = 0;
  bool no_soft_reset = false;  // PMCSR bit 3: D3hot->D0 keeps state, so no PM reset
};
PowerManagementCapability parse_power_management(ConfigBytes config, std::uint16_t offset);

// Advanced Features: the FLR that conventional PCI functions (and some PCIe ones) offer instead
// of the PCIe Device Capabilities bit. The kernel uses it only with Transactions Pending too.
struct AdvancedFeaturesCapability {
  std::uint16_t offset = 0;
  bool transactions_pending = false;  // PCI_AF_CAP_TP
  bool function_level_reset = false;  // PCI_AF_CAP_FLR
};
AdvancedFeaturesCapability parse_advanced_features(ConfigBytes config, std::uint16_t offset);

struct SriovCapability {
  std::uint16_t offset = 0;
  bool vfs_enabled = false;  // SR-IOV Control bit 0
  std::uint16_t initial_vfs = 0;
  std::uint16_t total_vfs = 0;
  std::uint16_t num_vfs = 0;
  std::uint16_t first_vf_offset = 0;
  std::uint16_t vf_stride = 0;
  std::uint16_t vf_device_id = 0;
};
SriovCapability parse_sriov(ConfigBytes config, std::uint16_t offset);

// What the Base Address Registers say (the kernel's sizes come from sysfs "resource").
enum class BarKind { io, mem32, mem64 };
struct BarRegister {
  unsigned index = 0;
  BarKind kind = BarKind::mem32;
  bool prefetchable = false;
  std::uint64_t address = 0;
};
// The implemented BARs of a type 0 (six) or type 1 (two) header; a BAR reading as zero is
// unimplemented and left out, and a 64-bit BAR consumes the next slot as its upper half.
// Throws if a 64-bit BAR starts in the last slot or a memory BAR uses the reserved type.
std::vector<BarRegister> decode_bar_registers(ConfigBytes config);
// The other direction: the type bits of a BAR's low dword (I/O space, 64-bit, prefetchable),
// and the whole register, low dword then (mem64) the high one. Decoding what these encode
// gives the same BarRegister back.
std::uint32_t bar_type_bits(BarKind kind, bool prefetchable) noexcept;
std::uint64_t encode_bar_register(const BarRegister& bar) noexcept;

std::string_view to_string(BarKind kind) noexcept;

// Short names for capability IDs, as lspci spells them; "" for IDs without one here.
std::string_view capability_name(std::uint8_t id) noexcept;
std::string_view extended_capability_name(std::uint16_t id) noexcept;

}  // namespace vfiokit::pci
