#include "vfiokit/pci/device.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::pci {
namespace fs = std::filesystem;
namespace {

// <linux/ioport.h> IORESOURCE_* flags as sysfs "resource" shows them.
constexpr std::uint64_t kIoresourceIo = 0x100;
constexpr std::uint64_t kIoresourceMem = 0x200;
constexpr std::uint64_t kIoresourcePrefetch = 0x2000;
constexpr std::uint64_t kIoresourceMem64 = 0x100000;
constexpr unsigned kRomResourceIndex = 6;

template <typename T>
std::optional<T> read_hex_attribute(const fs::path& path) {
  const auto text = read_line_if_exists(path);
  if (!text) return std::nullopt;
  const auto value = parse_uint(*text, 16);
  if (!value || *value > std::numeric_limits<T>::max()) return std::nullopt;
  return static_cast<T>(*value);
}

std::optional<unsigned> read_decimal_attribute(const fs::path& path) {
  const auto text = read_line_if_exists(path);
  if (!text) return std::nullopt;
  const auto value = parse_uint(*text);
  if (!value || *value > 0xffffffffu) return std::nullopt;
  return static_cast<unsigned>(*value);
}

}  // namespace

std::vector<ResourceRange> parse_resource_file(std::string_view text) {
  std::vector<ResourceRange> ranges;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty()) continue;
    const auto words = split_words(line);
    auto malformed = [&] {
      return Error("parse sysfs resource",
                   "line " + std::to_string(ranges.size()) + " is '" + std::string(line) + "'");
    };
    if (words.size() != 3) throw malformed();
    const auto start = parse_uint(words[0], 16);
    const auto last = parse_uint(words[1], 16);
    const auto flags = parse_uint(words[2], 16);
    // A range of the whole 64-bit space has a size (2^64) that does not fit in its type.
    if (!start || !last || !flags || *last < *start ||
        (*start == 0 && *last == ~std::uint64_t{0})) {
      throw malformed();
    }
    ranges.push_back({*start, *last, *flags});
  }
  return ranges;
}

std::vector<Bar> bars_from_resources(std::span<const ResourceRange> ranges) {
  std::vector<Bar> bars;
  for (unsigned index = 0; index < std::min<std::size_t>(ranges.size(), 6); ++index) {
    const ResourceRange& range = ranges[index];
    if (range.size() == 0) continue;
    Bar bar;
    bar.index = index;
    bar.address = range.start;
    bar.size = range.size();
    bar.prefetchable = (range.flags & kIoresourcePrefetch) != 0;
    if (range.flags & kIoresourceIo) {
      bar.kind = BarKind::io;
    } else if (range.flags & kIoresourceMem) {
      bar.kind = (range.flags & kIoresourceMem64) ? BarKind::mem64 : BarKind::mem32;
    } else {
      continue;  // neither I/O nor memory: not a usable BAR
    }
    bars.push_back(bar);
  }
  return bars;
}

ConfigFacts parse_config_facts(ConfigBytes config) {
  ConfigFacts facts;
  facts.size = config.size();
  try {
    facts.header = parse_config_header(config);
    if (config.size() < kLegacyConfigSize) {
      facts.header_only = true;
      return facts;
    }
    facts.capabilities = walk_capabilities(config);
    for (const auto& cap : facts.capabilities) {
      switch (cap.id) {
        case kCapMsi:
          facts.msi = parse_msi(config, cap.offset);
          break;
        case kCapMsix:
          facts.msix = parse_msix(config, cap.offset);
          break;
        case kCapPciExpress:
          facts.pcie = parse_pcie(config, cap.offset);
          break;
        case kCapPowerManagement:
          facts.power_management = parse_power_management(config, cap.offset);
          break;
        case kCapAdvancedFeatures:
          facts.advanced_features = parse_advanced_features(config, cap.offset);
          break;
        default:
          break;
      }
    }
    facts.extended_capabilities = walk_extended_capabilities(config);
    for (const auto& cap : facts.extended_capabilities) {
      if (cap.id == kExtCapSriov) facts.sriov = parse_sriov(config, cap.offset);
    }
  } catch (const Error& e) {
    facts.error = e.message();
  }
  return facts;
}

bool PciDevice::is_bridge() const noexcept {
  if (config.header && config.header->header_type != 0) return true;
  return (class_code >> 8) == 0x0604 || (class_code >> 8) == 0x0607;
}

bool PciDevice::multifunction() const noexcept {
  return config.header && config.header->multifunction;
}

std::string id_hex(std::uint16_t id) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "%04x", id);
  return buffer;
}

std::string class_hex(std::uint32_t class_code) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "%04x", (class_code >> 8) & 0xffffu);
  return buffer;
}

fs::path device_dir(const HostPaths& paths, const Bdf& bdf) {
  return paths.sys / "bus/pci/devices" / bdf.to_string();
}

std::optional<std::string> read_driver(const HostPaths& paths, const Bdf& bdf) {
  return read_link_name(device_dir(paths, bdf) / "driver");
}

std::optional<std::string> read_driver_override(const HostPaths& paths, const Bdf& bdf) {
  auto value = read_line_if_exists(device_dir(paths, bdf) / "driver_override");
  if (!value || value->empty() || *value == "(null)") return std::nullopt;
  return value;
}

std::vector<Bdf> list_pci_devices(const HostPaths& paths) {
  std::vector<Bdf> devices;
  for (const auto& name : list_dir(paths.sys / "bus/pci/devices")) {
    if (auto bdf = parse_bdf(name)) devices.push_back(*bdf);
  }
  std::sort(devices.begin(), devices.end());
  return devices;
}

bool pci_device_exists(const HostPaths& paths, const Bdf& bdf) {
  return fs::exists(device_dir(paths, bdf));
}

PciDevice read_pci_device(const HostPaths& paths, const Bdf& bdf, ConfigDepth depth) {
  const fs::path dir = device_dir(paths, bdf);
  if (!fs::exists(dir)) {
    throw Error("find PCI device", "no PCI function " + bdf.to_string() + " on this system")
        .with("bdf", bdf.to_string())
        .hint("`vfiokit list` shows the PCI functions there are");
  }
  PciDevice dev;
  dev.bdf = bdf;
  dev.vendor_id = read_hex_attribute<std::uint16_t>(dir / "vendor").value_or(0xffff);
  dev.device_id = read_hex_attribute<std::uint16_t>(dir / "device").value_or(0xffff);
  dev.subsystem_vendor_id = read_hex_attribute<std::uint16_t>(dir / "subsystem_vendor").value_or(0);
  dev.subsystem_id = read_hex_attribute<std::uint16_t>(dir / "subsystem_device").value_or(0);
  dev.class_code = read_hex_attribute<std::uint32_t>(dir / "class").value_or(0) & 0xffffffu;
  dev.revision = read_hex_attribute<std::uint8_t>(dir / "revision").value_or(0);
  dev.driver = read_driver(paths, bdf);
  dev.driver_override = read_driver_override(paths, bdf);
  if (auto group = read_link_name(dir / "iommu_group")) {
    if (auto number = parse_uint(*group); number && *number <= 0xffffffffu) {
      dev.iommu_group = static_cast<unsigned>(*number);
    }
  }
  if (auto node = read_line_if_exists(dir / "numa_node")) {
    if (auto value = parse_uint(*node); value && *value < 4096)
      dev.numa_node = static_cast<int>(*value);
  }
  dev.boot_vga = read_line_if_exists(dir / "boot_vga") == "1";
  dev.sriov_total_vfs = read_decimal_attribute(dir / "sriov_totalvfs");
  dev.sriov_num_vfs = read_decimal_attribute(dir / "sriov_numvfs");
  if (auto pf = read_link_name(dir / "physfn")) dev.physfn = parse_bdf(*pf);
  if (auto methods = read_line_if_exists(dir / "reset_method")) {
    for (const auto word : split_words(*methods)) dev.reset_methods.emplace_back(word);
  }
  if (auto resource = read_file_if_exists(dir / "resource")) {
    try {
      const auto ranges = parse_resource_file(*resource);
      dev.bars = bars_from_resources(ranges);
      if (ranges.size() > kRomResourceIndex) dev.rom_size = ranges[kRomResourceIndex].size();
    } catch (const Error&) {
      // A malformed resource file leaves the BARs unknown; the rest of the device still reads.
    }
  }
  if (fs::exists(dir / "config")) {
    const auto bytes = read_bytes(
        dir / "config", depth == ConfigDepth::full ? kExtendedConfigSize : kConfigHeaderSize);
    dev.config = depth == ConfigDepth::full ? parse_config_facts(bytes) : ConfigFacts{};
    if (depth == ConfigDepth::header) {
      dev.config.size = bytes.size();
      try {
        dev.config.header = parse_config_header(bytes);
      } catch (const Error& e) {
        dev.config.error = e.message();
      }
    }
  }
  return dev;
}

}  // namespace vfiokit::pci
