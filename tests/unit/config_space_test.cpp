#include "vfiokit/pci/config_space.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/unit/config_builder.h"
#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::pci {
namespace {

using test::ConfigBuilder;

std::vector<std::uint8_t> rig_config(const char* bdf) {
  return read_bytes(test::fixture("sysfs/rig/sys/bus/pci/devices") / bdf / "config", 4096);
}

std::string error_of(auto&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

TEST(ConfigSpace, RealNvmeFromTheRig) {
  const auto config = rig_config("0000:00:02.0");
  ASSERT_EQ(config.size(), 4096u);
  const ConfigHeader header = parse_config_header(config);
  EXPECT_EQ(header.vendor_id, 0x1b36);
  EXPECT_EQ(header.device_id, 0x0010);
  EXPECT_EQ(header.class_code, 0x010802u);
  EXPECT_EQ(header.header_type, 0);
  EXPECT_TRUE(header.has_capability_list);
  const auto msix_at = find_capability(config, kCapMsix);
  ASSERT_EQ(msix_at, 0x40);
  const MsixCapability msix = parse_msix(config, *msix_at);
  EXPECT_EQ(msix.table_size, 65u);
  EXPECT_EQ(msix.table_bar, 0);
  EXPECT_EQ(msix.table_offset, 0x2000u);
  EXPECT_EQ(msix.pba_bar, 0);
  EXPECT_EQ(msix.pba_offset, 0x3000u);
  const auto bars = decode_bar_registers(config);
  ASSERT_EQ(bars.size(), 1u);
  EXPECT_EQ(bars[0].kind, BarKind::mem64);
  EXPECT_EQ(bars[0].address, 0xfeb80000u);
}

TEST(ConfigSpace, RealEduHasMsiAndA256ByteSpace) {
  const auto config = rig_config("0000:00:01.0");
  EXPECT_EQ(config.size(), 256u);
  const auto msi_at = find_capability(config, kCapMsi);
  ASSERT_EQ(msi_at, 0x40);
  const MsiCapability msi = parse_msi(config, *msi_at);
  EXPECT_EQ(msi.vectors_capable, 1u);
  EXPECT_TRUE(msi.address_64bit);
  EXPECT_TRUE(walk_extended_capabilities(config).empty());
}

TEST(ConfigSpace, RealE1000eHasBothListsInOrder) {
  const auto config = rig_config("0000:00:03.0");
  std::vector<std::uint8_t> ids;
  for (const auto& cap : walk_capabilities(config)) ids.push_back(cap.id);
  EXPECT_EQ(ids,
            (std::vector<std::uint8_t>{kCapPowerManagement, kCapMsi, kCapPciExpress, kCapMsix}));
  const auto ext = walk_extended_capabilities(config);
  ASSERT_EQ(ext.size(), 2u);
  EXPECT_EQ(ext[0].id, kExtCapAer);
  EXPECT_EQ(ext[0].offset, 0x100);
}

TEST(ConfigSpace, TruncatedUnprivilegedReadSaysSo) {
  auto config = rig_config("0000:00:02.0");
  config.resize(64);
  EXPECT_NO_THROW(parse_config_header(config));
  try {
    walk_capabilities(config);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(e.hint().find("needs root"), std::string::npos);
  }
  config.resize(63);
  EXPECT_THROW(parse_config_header(config), Error);
}

TEST(ConfigSpace, CapabilityLoopIsAnError) {
  ConfigBuilder b(256);
  b.endpoint(0x1234, 0x5678, 0x40).cap(0x40, kCapMsi, 0x50).cap(0x50, kCapPciExpress, 0x40);
  EXPECT_NE(error_of([&] { walk_capabilities(b.bytes()); }).find("loops back to 0x40"),
            std::string::npos);
  ConfigBuilder self(256);
  self.endpoint(1, 2, 0x40).cap(0x40, kCapMsi, 0x40);
  EXPECT_THROW(walk_capabilities(self.bytes()), Error);
}

TEST(ConfigSpace, PointerIntoTheHeaderIsAnError) {
  ConfigBuilder b(256);
  b.endpoint(1, 2, 0x40).cap(0x40, kCapMsi, 0x3c);
  EXPECT_NE(error_of([&] { walk_capabilities(b.bytes()); }).find("points into the header"),
            std::string::npos);
}

TEST(ConfigSpace, ReservedLowPointerBitsAreMasked) {
  ConfigBuilder b(256);
  b.endpoint(1, 2, 0x43).cap(0x40, kCapMsi, 0x53).cap(0x50, kCapMsix, 0);
  const auto caps = walk_capabilities(b.bytes());
  ASSERT_EQ(caps.size(), 2u);
  EXPECT_EQ(caps[0].offset, 0x40);
  EXPECT_EQ(caps[1].offset, 0x50);
}

TEST(ConfigSpace, NoCapabilityListBitMeansNoCapabilities) {
  ConfigBuilder b(256);
  b.endpoint(1, 2, 0x40).u16(6, 0).cap(0x40, kCapMsi, 0);
  EXPECT_TRUE(walk_capabilities(b.bytes()).empty());
}

TEST(ConfigSpace, LongestPossibleChainIsWalkedWhole) {
  // 48 capabilities, one in every dword from 0x40 to 0xfc.
  ConfigBuilder b(256);
  b.endpoint(1, 2, 0x40);
  for (unsigned offset = 0x40; offset < 0x100; offset += 4) {
    b.cap(offset, kCapVendorSpecific,
          static_cast<std::uint8_t>(offset + 4 < 0x100 ? offset + 4 : 0));
  }
  EXPECT_EQ(walk_capabilities(b.bytes()).size(), 48u);
}

TEST(ConfigSpace, ExtendedListErrors) {
  ConfigBuilder loop;
  loop.endpoint(1, 2, 0).ext_cap(0x100, kExtCapAer, 0x140).ext_cap(0x140, kExtCapSriov, 0x100);
  EXPECT_NE(error_of([&] { walk_extended_capabilities(loop.bytes()); }).find("loops"),
            std::string::npos);
  ConfigBuilder low;
  low.endpoint(1, 2, 0).ext_cap(0x100, kExtCapAer, 0x0c0);
  EXPECT_NE(error_of([&] { walk_extended_capabilities(low.bytes()); }).find("below 0x100"),
            std::string::npos);
  ConfigBuilder ones;
  ones.endpoint(1, 2, 0).u32(0x100, 0xffffffff);
  EXPECT_TRUE(walk_extended_capabilities(ones.bytes()).empty());
  ConfigBuilder last;
  last.endpoint(1, 2, 0).ext_cap(0x100, kExtCapAer, 0xffc).ext_cap(0xffc, kExtCapAri, 0);
  EXPECT_EQ(walk_extended_capabilities(last.bytes()).size(), 2u);
}

TEST(ConfigSpace, MsiVectorCountsAndReservedValues) {
  for (unsigned log2 = 0; log2 < 8; ++log2) {
    ConfigBuilder b(256);
    b.endpoint(1, 2, 0x40)
        .cap(0x40, kCapMsi, 0)
        .u16(0x42, static_cast<std::uint16_t>(log2 << 1 | 0x180));
    if (log2 <= 5) {
      const MsiCapability msi = parse_msi(b.bytes(), 0x40);
      EXPECT_EQ(msi.vectors_capable, 1u << log2);
      EXPECT_TRUE(msi.address_64bit);
      EXPECT_TRUE(msi.per_vector_masking);
    } else {
      EXPECT_THROW(parse_msi(b.bytes(), 0x40), Error) << log2;
    }
  }
  // 64-bit with masking needs 24 bytes: at 0xf0 only 16 remain.
  ConfigBuilder tight(256);
  tight.u16(0xf2, 0x180);
  EXPECT_THROW(parse_msi(tight.bytes(), 0xf0), Error);
  ConfigBuilder fits(256);
  fits.u16(0xf2, 0x000);  // 32-bit, no masking: 10 bytes fit
  EXPECT_NO_THROW(parse_msi(fits.bytes(), 0xf0));
}

TEST(ConfigSpace, MsixTableSizeAndBarIndicators) {
  ConfigBuilder b(256);
  b.u16(0x42, 0xc7ff).u32(0x44, 0x00002004).u32(0x48, 0x00003005);
  const MsixCapability msix = parse_msix(b.bytes(), 0x40);
  EXPECT_EQ(msix.table_size, 2048u);
  EXPECT_TRUE(msix.enabled);
  EXPECT_TRUE(msix.function_masked);
  EXPECT_EQ(msix.table_bar, 4);
  EXPECT_EQ(msix.table_offset, 0x2000u);
  EXPECT_EQ(msix.pba_bar, 5);
  for (std::uint32_t bir : {6u, 7u}) {
    ConfigBuilder bad(256);
    bad.u32(0x44, 0x2000 | bir);
    EXPECT_THROW(parse_msix(bad.bytes(), 0x40), Error);
  }
}

TEST(ConfigSpace, PcieFlrAndPortType) {
  ConfigBuilder b(256);
  b.u16(0x42, 0x0042).u32(0x44, 1u << 28);
  const PcieCapability pcie = parse_pcie(b.bytes(), 0x40);
  EXPECT_EQ(pcie.version, 2);
  EXPECT_EQ(pcie.port_type, static_cast<std::uint8_t>(PciePortType::root_port));
  EXPECT_TRUE(pcie.function_level_reset);
}

TEST(ConfigSpace, SriovFromTheFixturePf) {
  const auto config =
      read_bytes(test::fixture("sysfs/sriov-pf/sys/bus/pci/devices/0000:03:00.0/config"), 4096);
  const auto at = find_extended_capability(config, kExtCapSriov);
  ASSERT_TRUE(at);
  const SriovCapability sriov = parse_sriov(config, *at);
  EXPECT_TRUE(sriov.vfs_enabled);
  EXPECT_EQ(sriov.total_vfs, 64);
  EXPECT_EQ(sriov.num_vfs, 2);
  EXPECT_EQ(sriov.vf_device_id, 0x154c);
}

TEST(ConfigSpace, BarDecoding) {
  ConfigBuilder b(256);
  b.u32(0x10, 0xf6000000)      // BAR0 mem32
      .u32(0x14, 0x0000000c)   // BAR1 mem64 prefetchable ...
      .u32(0x18, 0x00000040)   // ... upper half
      .u32(0x20, 0x0000e001);  // BAR4 io
  const auto bars = decode_bar_registers(b.bytes());
  ASSERT_EQ(bars.size(), 3u);
  EXPECT_EQ(bars[0].kind, BarKind::mem32);
  EXPECT_EQ(bars[1].index, 1u);
  EXPECT_EQ(bars[1].kind, BarKind::mem64);
  EXPECT_TRUE(bars[1].prefetchable);
  EXPECT_EQ(bars[1].address, 0x4000000000u);
  EXPECT_EQ(bars[2].index, 4u);
  EXPECT_EQ(bars[2].kind, BarKind::io);
  EXPECT_EQ(bars[2].address, 0xe000u);

  ConfigBuilder last(256);
  last.u32(0x24, 0x4);  // a 64-bit BAR in slot 5 has no upper half
  EXPECT_THROW(decode_bar_registers(last.bytes()), Error);
  ConfigBuilder reserved(256);
  reserved.u32(0x10, 0x6);  // memory type 11b is reserved
  EXPECT_THROW(decode_bar_registers(reserved.bytes()), Error);
  ConfigBuilder bridge(256);
  bridge.u8(0x0e, 1)
      .u32(0x10, 0xf0000000)
      .u32(0x18, 0xf1000000);  // 0x18 is a bus number on a bridge
  EXPECT_EQ(decode_bar_registers(bridge.bytes()).size(), 1u);
}

TEST(ConfigSpace, CapabilityNames) {
  EXPECT_EQ(capability_name(kCapMsix), "MSI-X");
  EXPECT_EQ(extended_capability_name(kExtCapSriov), "SR-IOV");
  EXPECT_EQ(capability_name(0xee), "");
}

// Found by fuzz/resource_file.cpp: a range of the whole 64-bit space parsed, and its size wrapped
// to 0, so the BAR it described vanished without an error.
TEST(ResourceFile, ARangeOfTheWhole64BitSpaceIsMalformed) {
  EXPECT_THROW(parse_resource_file("0x0 0xffffffffffffffff 0x200\n"), Error);
  const auto ranges = parse_resource_file("0x1 0xffffffffffffffff 0x200\n");
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0].size(), ~std::uint64_t{0});
}

// What an unprivileged process reads from sysfs "config": the 64-byte header, with the
// capability bit set and a pointer past the end. The header is parsed; the capabilities are
// unknown, which is not the same as damaged (no error that would blame the device).
TEST(ConfigSpace, AHeaderOnlyReadIsNotCalledDamaged) {
  std::vector<std::uint8_t> config(kConfigHeaderSize);
  config[0] = 0x36;
  config[1] = 0x1b;  // vendor 1b36
  config[6] = 0x10;  // PCI_STATUS_CAP_LIST
  config[PCI_CAPABILITY_LIST] = 0x40;
  const ConfigFacts facts = parse_config_facts(config);
  EXPECT_TRUE(facts.header_only);
  EXPECT_EQ(facts.error, "");
  ASSERT_TRUE(facts.header.has_value());
  EXPECT_EQ(facts.header->vendor_id, 0x1b36);
  EXPECT_TRUE(facts.capabilities.empty());

  config.resize(kLegacyConfigSize);  // as root: the walk runs, and finds the loop
  config[0x40 + PCI_CAP_LIST_NEXT] = 0x40;
  const ConfigFacts full = parse_config_facts(config);
  EXPECT_FALSE(full.header_only);
  EXPECT_NE(full.error, "");
}

// Hostile input: random bytes of every length, with the capability bit and pointer set so the
// walks really run. Nothing may crash or read out of bounds (the sanitizer run checks that);
// every failure must be a vfiokit::Error, collected into ConfigFacts::error.
TEST(ConfigSpace, RandomBytesNeverCrashTheParser) {
  std::mt19937 rng(20261125);
  std::uniform_int_distribution<int> byte(0, 255);
  const std::size_t sizes[] = {0, 1, 63, 64, 65, 100, 255, 256, 257, 300, 4095, 4096};
  int parsed = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<std::uint8_t> config(sizes[static_cast<std::size_t>(round) % std::size(sizes)]);
    for (auto& b : config) b = static_cast<std::uint8_t>(byte(rng));
    if (config.size() >= 64) config[6] |= 0x10;
    const ConfigFacts facts = parse_config_facts(config);
    EXPECT_LE(facts.capabilities.size(), 48u);
    EXPECT_LE(facts.extended_capabilities.size(), 960u);
    if (facts.error.empty()) ++parsed;
    try {
      decode_bar_registers(config);
    } catch (const Error&) {
    }
  }
  EXPECT_GT(parsed, 0);  // some random spaces are well-formed enough to parse whole
}

}  // namespace
}  // namespace vfiokit::pci
