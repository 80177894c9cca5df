#include "vfiokit/pci/config_space.h"

#include <bitset>
#include <string>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"

namespace vfiokit::pci {
namespace {

constexpr std::size_t kFirstExtendedCapability = PCI_CFG_SPACE_SIZE;

Error config_error(std::string message) { return Error("parse config space", std::move(message)); }

// Throws unless `length` bytes from `offset` are inside `config`; says "truncated" when the
// space is shorter than the part of it being read would need, which is what an unprivileged
// read of sysfs "config" looks like.
void require(ConfigBytes config, std::size_t offset, std::size_t length, std::string_view what) {
  if (offset <= config.size() && length <= config.size() - offset) return;
  Error e =
      config_error(std::string(what) + " at " + hex(offset) + " needs " + std::to_string(length) +
                   " bytes, but config space holds " + std::to_string(config.size()));
  if (config.size() < kLegacyConfigSize) {
    e.hint("config space is truncated: reading more than 64 bytes of sysfs 'config' needs root");
  }
  throw e;
}

}  // namespace

std::uint8_t config_read8(ConfigBytes config, std::size_t offset) {
  require(config, offset, 1, "a byte");
  return config[offset];
}
std::uint16_t config_read16(ConfigBytes config, std::size_t offset) {
  require(config, offset, 2, "a word");
  return static_cast<std::uint16_t>(config[offset] | config[offset + 1] << 8);
}
std::uint32_t config_read32(ConfigBytes config, std::size_t offset) {
  require(config, offset, 4, "a dword");
  return static_cast<std::uint32_t>(config[offset]) |
         static_cast<std::uint32_t>(config[offset + 1]) << 8 |
         static_cast<std::uint32_t>(config[offset + 2]) << 16 |
         static_cast<std::uint32_t>(config[offset + 3]) << 24;
}

ConfigHeader parse_config_header(ConfigBytes config) {
  require(config, 0, kConfigHeaderSize, "the header");
  ConfigHeader h;
  h.vendor_id = config_read16(config, PCI_VENDOR_ID);
  h.device_id = config_read16(config, PCI_DEVICE_ID);
  h.command = config_read16(config, PCI_COMMAND);
  h.status = config_read16(config, PCI_STATUS);
  h.revision = config_read8(config, PCI_REVISION_ID);
  h.class_code = config_read32(config, PCI_CLASS_REVISION) >> 8;
  const std::uint8_t type = config_read8(config, PCI_HEADER_TYPE);
  h.header_type = type & PCI_HEADER_TYPE_MASK;
  h.multifunction = (type & 0x80) != 0;  // the multi-function bit
  if (h.header_type == PCI_HEADER_TYPE_NORMAL) {
    h.subsystem_vendor_id = config_read16(config, PCI_SUBSYSTEM_VENDOR_ID);
    h.subsystem_id = config_read16(config, PCI_SUBSYSTEM_ID);
  }
  h.interrupt_pin = config_read8(config, PCI_INTERRUPT_PIN);
  h.has_capability_list = (h.status & PCI_STATUS_CAP_LIST) != 0;
  return h;
}

std::vector<Capability> walk_capabilities(ConfigBytes config) {
  const ConfigHeader header = parse_config_header(config);
  std::vector<Capability> caps;
  if (!header.has_capability_list) return caps;
  const std::size_t pointer_at =
      header.header_type == PCI_HEADER_TYPE_CARDBUS ? PCI_CB_CAPABILITY_LIST : PCI_CAPABILITY_LIST;
  // The low two bits of every capability pointer are reserved and must be masked (PCI 3.0 6.7).
  std::size_t offset = config_read8(config, pointer_at) & 0xfcu;
  std::bitset<kLegacyConfigSize / 4> visited;
  while (offset != 0) {
    if (offset < kConfigHeaderSize) {
      throw config_error("capability pointer " + hex(offset) + " points into the header");
    }
    if (offset >= kLegacyConfigSize) {
      throw config_error("capability pointer " + hex(offset) + " is outside the 256-byte space");
    }
    require(config, offset, 2, "capability");
    if (visited.test(offset / 4)) {
      throw config_error("capability list loops back to " + hex(offset));
    }
    visited.set(offset / 4);
    caps.push_back({config[offset + PCI_CAP_LIST_ID], static_cast<std::uint16_t>(offset)});
    offset = config[offset + PCI_CAP_LIST_NEXT] & 0xfcu;
  }
  return caps;
}

std::vector<ExtendedCapability> walk_extended_capabilities(ConfigBytes config) {
  std::vector<ExtendedCapability> caps;
  if (config.size() <= kFirstExtendedCapability) return caps;
  std::bitset<kExtendedConfigSize / 4> visited;
  std::size_t offset = kFirstExtendedCapability;
  for (;;) {
    require(config, offset, 4, "extended capability");
    const std::uint32_t header = config_read32(config, offset);
    // No list at all reads as 0 (or all ones on some broken devices) at 0x100.
    if (offset == kFirstExtendedCapability && (header == 0 || header == 0xffffffffu)) break;
    if (visited.test(offset / 4)) {
      throw config_error("extended capability list loops back to " + hex(offset));
    }
    visited.set(offset / 4);
    caps.push_back({static_cast<std::uint16_t>(PCI_EXT_CAP_ID(header)),
                    static_cast<std::uint8_t>(PCI_EXT_CAP_VER(header)),
                    static_cast<std::uint16_t>(offset)});
    const std::size_t next = PCI_EXT_CAP_NEXT(header);
    if (next == 0) break;
    if (next < kFirstExtendedCapability) {
      throw config_error("extended capability pointer " + hex(next) + " at " + hex(offset) +
                         " points below 0x100");
    }
    offset = next;
  }
  return caps;
}

std::optional<std::uint16_t> find_capability(ConfigBytes config, std::uint8_t id) {
  for (const auto& cap : walk_capabilities(config)) {
    if (cap.id == id) return cap.offset;
  }
  return std::nullopt;
}

std::optional<std::uint16_t> find_extended_capability(ConfigBytes config, std::uint16_t id) {
  for (const auto& cap : walk_extended_capabilities(config)) {
    if (cap.id == id) return cap.offset;
  }
  return std::nullopt;
}

MsiCapability parse_msi(ConfigBytes config, std::uint16_t offset) {
  require(config, offset, 4, "MSI capability");
  const std::uint16_t control = config_read16(config, offset + PCI_MSI_FLAGS);
  MsiCapability msi;
  msi.offset = offset;
  msi.enabled = (control & PCI_MSI_FLAGS_ENABLE) != 0;
  const unsigned capable_log2 = (control & PCI_MSI_FLAGS_QMASK) >> 1;
  const unsigned enabled_log2 = (control & PCI_MSI_FLAGS_QSIZE) >> 4;
  if (capable_log2 > 5) {
    throw config_error("MSI capability at " + hex(offset) +
                       " has a reserved Multiple Message Capable value " +
                       std::to_string(capable_log2));
  }
  msi.vectors_capable = 1u << capable_log2;
  msi.vectors_enabled = 1u << (enabled_log2 > 5 ? 0 : enabled_log2);
  msi.address_64bit = (control & PCI_MSI_FLAGS_64BIT) != 0;
  msi.per_vector_masking = (control & PCI_MSI_FLAGS_MASKBIT) != 0;
  // Control + address (+ upper address) + data (+ reserved, mask and pending bits).
  const std::size_t length =
      std::size_t{msi.address_64bit ? 14u : 10u} + (msi.per_vector_masking ? 10u : 0u);
  require(config, offset, length, "MSI capability");
  return msi;
}

MsixCapability parse_msix(ConfigBytes config, std::uint16_t offset) {
  require(config, offset, 12, "MSI-X capability");
  const std::uint16_t control = config_read16(config, offset + PCI_MSIX_FLAGS);
  const std::uint32_t table = config_read32(config, offset + PCI_MSIX_TABLE);
  const std::uint32_t pba = config_read32(config, offset + PCI_MSIX_PBA);
  MsixCapability msix;
  msix.offset = offset;
  msix.table_size = (control & PCI_MSIX_FLAGS_QSIZE) + 1u;
  msix.function_masked = (control & PCI_MSIX_FLAGS_MASKALL) != 0;
  msix.enabled = (control & PCI_MSIX_FLAGS_ENABLE) != 0;
  msix.table_bar = static_cast<std::uint8_t>(table & PCI_MSIX_TABLE_BIR);
  msix.table_offset = table & PCI_MSIX_TABLE_OFFSET;
  msix.pba_bar = static_cast<std::uint8_t>(pba & PCI_MSIX_PBA_BIR);
  msix.pba_offset = pba & PCI_MSIX_PBA_OFFSET;
  if (msix.table_bar > 5 || msix.pba_bar > 5) {
    throw config_error("MSI-X capability at " + hex(offset) + " names reserved BAR indicator " +
                       std::to_string(msix.table_bar > 5 ? msix.table_bar : msix.pba_bar));
  }
  return msix;
}

PcieCapability parse_pcie(ConfigBytes config, std::uint16_t offset) {
  require(config, offset, 8, "PCI Express capability");
  const std::uint16_t caps = config_read16(config, offset + PCI_EXP_FLAGS);
  PcieCapability pcie;
  pcie.offset = offset;
  pcie.version = static_cast<std::uint8_t>(caps & PCI_EXP_FLAGS_VERS);
  pcie.port_type = static_cast<std::uint8_t>((caps & PCI_EXP_FLAGS_TYPE) >> 4);
  pcie.function_level_reset =
      (config_read32(config, offset + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR) != 0;
  return pcie;
}

PowerManagementCapability parse_power_management(ConfigBytes config, std::uint16_t offset) {
  require(config, offset, 6, "power management capability");
  return {offset, (config_read16(config, offset + PCI_PM_CTRL) & PCI_PM_CTRL_NO_SOFT_RESET) != 0};
}

AdvancedFeaturesCapability parse_advanced_features(ConfigBytes config, std::uint16_t offset) {
  require(config, offset, 6, "advanced features capability");
  const std::uint8_t caps = config_read8(config, offset + PCI_AF_CAP);
  return {offset, (caps & PCI_AF_CAP_TP) != 0, (caps & PCI_AF_CAP_FLR) != 0};
}

SriovCapability parse_sriov(ConfigBytes config, std::uint16_t offset) {
  require(config, offset, 0x1c, "SR-IOV capability");
  SriovCapability sriov;
  sriov.offset = offset;
  sriov.vfs_enabled = (config_read16(config, offset + PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_VFE) != 0;
  sriov.initial_vfs = config_read16(config, offset + PCI_SRIOV_INITIAL_VF);
  sriov.total_vfs = config_read16(config, offset + PCI_SRIOV_TOTAL_VF);
  sriov.num_vfs = config_read16(config, offset + PCI_SRIOV_NUM_VF);
  sriov.first_vf_offset = config_read16(config, offset + PCI_SRIOV_VF_OFFSET);
  sriov.vf_stride = config_read16(config, offset + PCI_SRIOV_VF_STRIDE);
  sriov.vf_device_id = config_read16(config, offset + PCI_SRIOV_VF_DID);
  return sriov;
}

std::vector<BarRegister> decode_bar_registers(ConfigBytes config) {
  const ConfigHeader header = parse_config_header(config);
  const unsigned count = header.header_type == PCI_HEADER_TYPE_NORMAL   ? 6
                         : header.header_type == PCI_HEADER_TYPE_BRIDGE ? 2
                                                                        : 1;
  auto register_at = [&](unsigned index) {
    return config_read32(config, PCI_BASE_ADDRESS_0 + 4u * index);
  };
  std::vector<BarRegister> bars;
  for (unsigned index = 0; index < count; ++index) {
    const std::uint32_t low = register_at(index);
    if (low == 0) continue;
    BarRegister bar;
    bar.index = index;
    if (low & PCI_BASE_ADDRESS_SPACE_IO) {
      bar.kind = BarKind::io;
      bar.address = low & static_cast<std::uint32_t>(PCI_BASE_ADDRESS_IO_MASK);
      bars.push_back(bar);
      continue;
    }
    bar.prefetchable = (low & PCI_BASE_ADDRESS_MEM_PREFETCH) != 0;
    const std::uint32_t address_low = low & static_cast<std::uint32_t>(PCI_BASE_ADDRESS_MEM_MASK);
    switch (low & PCI_BASE_ADDRESS_MEM_TYPE_MASK) {
      case PCI_BASE_ADDRESS_MEM_TYPE_32:
        bar.kind = BarKind::mem32;
        bar.address = address_low;
        break;
      case PCI_BASE_ADDRESS_MEM_TYPE_64:
        if (index + 1 >= count) {
          throw config_error("64-bit BAR " + std::to_string(index) +
                             " has no room for its upper half");
        }
        bar.kind = BarKind::mem64;
        bar.address = std::uint64_t{register_at(index + 1)} << 32 | address_low;
        ++index;  // the upper half is not a BAR of its own
        break;
      default:
        throw config_error("BAR " + std::to_string(index) + " uses a reserved memory type");
    }
    bars.push_back(bar);
  }
  return bars;
}

std::uint32_t bar_type_bits(BarKind kind, bool prefetchable) noexcept {
  if (kind == BarKind::io) return PCI_BASE_ADDRESS_SPACE_IO;
  return (kind == BarKind::mem64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : PCI_BASE_ADDRESS_MEM_TYPE_32) |
         (prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0u);
}

std::uint64_t encode_bar_register(const BarRegister& bar) noexcept {
  const auto mask = bar.kind == BarKind::io ? PCI_BASE_ADDRESS_IO_MASK : PCI_BASE_ADDRESS_MEM_MASK;
  const std::uint64_t low = (bar.address & static_cast<std::uint32_t>(mask)) |
                            bar_type_bits(bar.kind, bar.prefetchable && bar.kind != BarKind::io);
  const std::uint64_t high = bar.kind == BarKind::mem64 ? bar.address >> 32 : 0;
  return high << 32 | low;
}

std::string_view to_string(BarKind kind) noexcept {
  switch (kind) {
    case BarKind::io:
      return "io";
    case BarKind::mem32:
      return "mem32";
    case BarKind::mem64:
      return "mem64";
  }
  return "?";
}

}  // namespace vfiokit::pci

namespace vfiokit::pci {

std::string_view capability_name(std::uint8_t id) noexcept {
  switch (id) {
    case 0x01:
      return "Power Management";
    case 0x02:
      return "AGP";
    case 0x03:
      return "Vital Product Data";
    case 0x04:
      return "Slot Identification";
    case 0x05:
      return "MSI";
    case 0x07:
      return "PCI-X";
    case 0x08:
      return "HyperTransport";
    case 0x09:
      return "Vendor Specific";
    case 0x0a:
      return "Debug Port";
    case 0x0c:
      return "PCI Hot-Plug";
    case 0x0d:
      return "Bridge Subsystem ID";
    case 0x10:
      return "PCI Express";
    case 0x11:
      return "MSI-X";
    case 0x12:
      return "SATA";
    case 0x13:
      return "Advanced Features";
    case 0x14:
      return "Enhanced Allocation";
    default:
      return "";
  }
}

std::string_view extended_capability_name(std::uint16_t id) noexcept {
  switch (id) {
    case 0x0001:
      return "Advanced Error Reporting";
    case 0x0002:
      return "Virtual Channel";
    case 0x0003:
      return "Device Serial Number";
    case 0x0004:
      return "Power Budgeting";
    case 0x000b:
      return "Vendor Specific";
    case 0x000d:
      return "Access Control Services";
    case 0x000e:
      return "Alternative Routing-ID";
    case 0x000f:
      return "Address Translation Services";
    case 0x0010:
      return "SR-IOV";
    case 0x0013:
      return "Page Request";
    case 0x0015:
      return "Resizable BAR";
    case 0x0017:
      return "TPH Requester";
    case 0x0018:
      return "Latency Tolerance Reporting";
    case 0x0019:
      return "Secondary PCI Express";
    case 0x001b:
      return "Process Address Space ID";
    case 0x001e:
      return "L1 PM Substates";
    case 0x0023:
      return "Designated Vendor-Specific";
    case 0x0025:
      return "Data Link Feature";
    case 0x0026:
      return "Physical Layer 16 GT/s";
    default:
      return "";
  }
}

}  // namespace vfiokit::pci
