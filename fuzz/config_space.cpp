// PCI config space as a device (or a damaged sysfs read) may present it: the header, both
// capability walks, every capability parser, BAR decoding and parse_config_facts.
//
// Invariants: standard capabilities sit at dword-aligned offsets in [0x40, 0x100), extended ones
// in [0x100, size), no offset repeats, and each header is wholly inside the space; find_* agree
// with the walks; a parsed capability fits in the space and its fields are in their ranges;
// BARs come in index order and re-encode to the registers they came from; parse_config_facts
// never throws and says the same as the walks.
#include <algorithm>
#include <set>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/pci/config_space.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::pci {
namespace {

bool power_of_two_up_to(unsigned value, unsigned limit) {
  return value != 0 && (value & (value - 1)) == 0 && value <= limit;
}

void check_standard(ConfigBytes config, const std::vector<Capability>& caps) {
  std::set<std::uint16_t> seen;
  FUZZ_CHECK(caps.size() <= (kLegacyConfigSize - kConfigHeaderSize) / 4);
  for (const Capability& cap : caps) {
    FUZZ_CHECK(cap.offset >= kConfigHeaderSize && cap.offset < kLegacyConfigSize);
    FUZZ_CHECK(cap.offset % 4 == 0);
    FUZZ_CHECK(cap.offset + 2u <= config.size());
    FUZZ_CHECK(seen.insert(cap.offset).second);
    FUZZ_CHECK(config[cap.offset] == cap.id);
    // find_capability gives the first in list order.
    const auto first = find_capability(config, cap.id);
    FUZZ_CHECK(first.has_value() && *first == std::find_if(caps.begin(), caps.end(), [&](auto& c) {
                                                return c.id == cap.id;
                                              })->offset);
    try {
      switch (cap.id) {
        case kCapMsi: {
          const MsiCapability msi = parse_msi(config, cap.offset);
          FUZZ_CHECK(power_of_two_up_to(msi.vectors_capable, 32));
          FUZZ_CHECK(power_of_two_up_to(msi.vectors_enabled, 32));
          const unsigned length =
              (msi.address_64bit ? 14u : 10u) + (msi.per_vector_masking ? 10u : 0u);
          FUZZ_CHECK(cap.offset + length <= config.size());
          break;
        }
        case kCapMsix: {
          const MsixCapability msix = parse_msix(config, cap.offset);
          FUZZ_CHECK(msix.table_size >= 1 && msix.table_size <= 2048);
          FUZZ_CHECK(msix.table_bar <= 5 && msix.pba_bar <= 5);
          FUZZ_CHECK(msix.table_offset % 8 == 0 && msix.pba_offset % 8 == 0);
          FUZZ_CHECK(msix.table_bytes() == 16ull * msix.table_size);
          FUZZ_CHECK(msix.pba_bytes() * 8 >= msix.table_size && msix.pba_bytes() % 8 == 0);
          FUZZ_CHECK(cap.offset + 12u <= config.size());
          break;
        }
        case kCapPciExpress:
          FUZZ_CHECK(parse_pcie(config, cap.offset).port_type <= 0xf);
          FUZZ_CHECK(cap.offset + 8u <= config.size());
          break;
        case kCapPowerManagement:
          parse_power_management(config, cap.offset);
          FUZZ_CHECK(cap.offset + 6u <= config.size());
          break;
        default:
          break;
      }
    } catch (const Error&) {
      // A capability cut short by the end of the space, or one naming reserved values.
    }
  }
}

void check_extended(ConfigBytes config, const std::vector<ExtendedCapability>& caps) {
  std::set<std::uint16_t> seen;
  for (const ExtendedCapability& cap : caps) {
    FUZZ_CHECK(cap.offset >= kLegacyConfigSize && cap.offset % 4 == 0);
    FUZZ_CHECK(cap.offset + 4u <= config.size());
    FUZZ_CHECK(seen.insert(cap.offset).second);
    FUZZ_CHECK(cap.id == fuzz::get_le(config, cap.offset, 2));
    const auto first = find_extended_capability(config, cap.id);
    FUZZ_CHECK(first.has_value() && *first == std::find_if(caps.begin(), caps.end(), [&](auto& c) {
                                                return c.id == cap.id;
                                              })->offset);
    if (cap.id == kExtCapSriov) {
      try {
        const SriovCapability sriov = parse_sriov(config, cap.offset);
        FUZZ_CHECK(sriov.offset == cap.offset && cap.offset + 0x1cu <= config.size());
      } catch (const Error&) {
      }
    }
  }
  if (!caps.empty()) FUZZ_CHECK(caps.front().offset == kLegacyConfigSize);
}

void check_bars(ConfigBytes config, const std::vector<BarRegister>& bars) {
  const ConfigHeader header = parse_config_header(config);
  const unsigned slots = header.header_type == PCI_HEADER_TYPE_NORMAL   ? 6
                         : header.header_type == PCI_HEADER_TYPE_BRIDGE ? 2
                                                                        : 1;
  unsigned next_free = 0;
  for (const BarRegister& bar : bars) {
    FUZZ_CHECK(bar.index >= next_free && bar.index < slots);
    const std::uint32_t low = config_read32(config, PCI_BASE_ADDRESS_0 + 4u * bar.index);
    const std::uint64_t encoded = encode_bar_register(bar);
    if (bar.kind == BarKind::io) {
      // Bit 1 of an I/O BAR is reserved; decoding drops it.
      FUZZ_CHECK(encoded == (low & ~std::uint32_t{2}));
    } else if (bar.kind == BarKind::mem32) {
      FUZZ_CHECK(encoded == low);
    } else {
      FUZZ_CHECK(bar.index + 1 < slots);
      const std::uint32_t high = config_read32(config, PCI_BASE_ADDRESS_0 + 4u * (bar.index + 1));
      FUZZ_CHECK(encoded == (std::uint64_t{high} << 32 | low));
    }
    FUZZ_CHECK(!to_string(bar.kind).empty());
    next_free = bar.index + (bar.kind == BarKind::mem64 ? 2 : 1);
  }
}

}  // namespace
}  // namespace vfiokit::pci

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::pci;
  const ConfigBytes config(bytes, std::min(size, kExtendedConfigSize));

  const ConfigFacts facts = parse_config_facts(config);  // never throws
  FUZZ_CHECK(facts.size == config.size());
  // Shorter than 256 bytes is what an unprivileged read returns: the header only, nothing
  // walked and nothing called damaged.
  FUZZ_CHECK(facts.header_only ==
             (config.size() >= kConfigHeaderSize && config.size() < kLegacyConfigSize));
  if (facts.header_only) {
    FUZZ_CHECK(facts.error.empty() && facts.header.has_value());
    FUZZ_CHECK(facts.capabilities.empty() && facts.extended_capabilities.empty());
    return 0;
  }
  try {
    const auto caps = walk_capabilities(config);
    check_standard(config, caps);
    if (facts.error.empty()) {
      FUZZ_CHECK(facts.header.has_value());
      FUZZ_CHECK(facts.capabilities.size() == caps.size());
    }
  } catch (const vfiokit::Error&) {
    FUZZ_CHECK(!facts.error.empty());
  }
  try {
    const auto caps = walk_extended_capabilities(config);
    check_extended(config, caps);
    if (facts.error.empty()) FUZZ_CHECK(facts.extended_capabilities.size() == caps.size());
  } catch (const vfiokit::Error&) {
    FUZZ_CHECK(!facts.error.empty());
  }
  try {
    check_bars(config, decode_bar_registers(config));
  } catch (const vfiokit::Error&) {
  }
  for (const auto& cap : facts.capabilities) capability_name(cap.id);
  for (const auto& cap : facts.extended_capabilities) extended_capability_name(cap.id);
  return 0;
}
