// BAR registers both ways: what encode_bar_register writes, decode_bar_registers reads back, for
// every kind, with and without prefetch, at addresses that use every address bit the kind has.
#include <gtest/gtest.h>

#include "tests/unit/config_builder.h"
#include "vfiokit/pci/config_space.h"

namespace vfiokit::pci {
namespace {

// A type 0 header whose BARs are `bars`, encoded.
std::vector<std::uint8_t> header_with(const std::vector<BarRegister>& bars) {
  test::ConfigBuilder config(kLegacyConfigSize);
  for (const BarRegister& bar : bars) {
    const std::uint64_t value = encode_bar_register(bar);
    config.u32(PCI_BASE_ADDRESS_0 + 4 * bar.index, static_cast<std::uint32_t>(value));
    if (bar.kind == BarKind::mem64) {
      config.u32(PCI_BASE_ADDRESS_0 + 4 * (bar.index + 1), static_cast<std::uint32_t>(value >> 32));
    }
  }
  return config.bytes();
}

bool same(const BarRegister& a, const BarRegister& b) {
  return a.index == b.index && a.kind == b.kind && a.prefetchable == b.prefetchable &&
         a.address == b.address;
}

TEST(BarRegister, EncodeThenDecodeGivesTheSameBars) {
  const std::vector<BarRegister> bars = {
      {0, BarKind::mem64, true, 0xfedc'ba98'7654'0000},
      {2, BarKind::mem32, false, 0xfebf'f000},
      {3, BarKind::io, false, 0xc0f0},
      {4, BarKind::mem64, false, 0x0000'0010'0000'0000},
  };
  const auto decoded = decode_bar_registers(header_with(bars));
  ASSERT_EQ(decoded.size(), bars.size());
  for (std::size_t i = 0; i < bars.size(); ++i) {
    EXPECT_TRUE(same(decoded[i], bars[i])) << "BAR " << bars[i].index;
  }
}

TEST(BarRegister, TypeBitsAreTheKernelsNames) {
  EXPECT_EQ(bar_type_bits(BarKind::io, false), PCI_BASE_ADDRESS_SPACE_IO);
  EXPECT_EQ(bar_type_bits(BarKind::mem32, false), PCI_BASE_ADDRESS_MEM_TYPE_32);
  EXPECT_EQ(bar_type_bits(BarKind::mem64, true),
            PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
  // An I/O BAR has no prefetch bit; asking for one does not invent it.
  EXPECT_EQ(encode_bar_register({0, BarKind::io, true, 0x1000}), 0x1001u);
}

TEST(BarRegister, SizingMasksEncodeAsTheDeviceWouldAnswer) {
  // What a guest reads back after writing all ones to a 16 KiB 64-bit prefetchable BAR.
  const std::uint64_t mask = ~std::uint64_t{16 * 1024 - 1};
  const std::uint64_t value = encode_bar_register({0, BarKind::mem64, true, mask});
  EXPECT_EQ(static_cast<std::uint32_t>(value), 0xffffc00cu);
  EXPECT_EQ(static_cast<std::uint32_t>(value >> 32), 0xffffffffu);
  // A 256-byte I/O BAR.
  EXPECT_EQ(encode_bar_register({1, BarKind::io, false, ~std::uint64_t{0xff}}) & 0xffffffffu,
            0xffffff01u);
}

TEST(MsixCapability, TableAndPbaSizes) {
  MsixCapability msix;
  msix.table_size = 1;
  EXPECT_EQ(msix.table_bytes(), 16u);
  EXPECT_EQ(msix.pba_bytes(), 8u);
  msix.table_size = 64;
  EXPECT_EQ(msix.pba_bytes(), 8u);
  msix.table_size = 65;
  EXPECT_EQ(msix.table_bytes(), 65u * 16);
  EXPECT_EQ(msix.pba_bytes(), 16u);
  msix.table_size = 2048;
  EXPECT_EQ(msix.table_bytes(), 32768u);
  EXPECT_EQ(msix.pba_bytes(), 256u);
}

}  // namespace
}  // namespace vfiokit::pci
