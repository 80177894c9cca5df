// The built-in VMM's pure parts: configuration mechanism #1, the PCI bus, guest BAR layout, the
// emulated MSI capability and MSI-X table, and the QEMU command line of `launch --qemu`; and
// INTx in the device model (pin, line, hidden capabilities, Interrupt Disable, the wiring)
// against the fake vfio-pci device and VM.
#include <gtest/gtest.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <vector>

#include "tests/unit/config_builder.h"
#include "tests/unit/fake_device.h"
#include "vfiokit/base/error.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/vmm/bar_layout.h"
#include "vfiokit/vmm/interrupt_state.h"
#include "vfiokit/vmm/launch.h"
#include "vfiokit/vmm/passthrough.h"
#include "vfiokit/vmm/pci_bus.h"
#include "vfiokit/vmm/qemu_command.h"

namespace vfiokit::vmm {
namespace {

std::uint32_t config_address(unsigned bus, unsigned device, unsigned function, unsigned reg) {
  return 0x80000000u | bus << 16 | device << 11 | function << 8 | reg;
}

TEST(ConfigAddress, DecodesEveryField) {
  EXPECT_EQ(decode_config_address(config_address(0, 1, 0, 0x10)),
            (ConfigAddress{true, 0, 1, 0, 0x10}));
  EXPECT_EQ(decode_config_address(config_address(0xff, 31, 7, 0xfc)),
            (ConfigAddress{true, 0xff, 31, 7, 0xfc}));
  // Bits 1:0 are not part of the register number; without bit 31 nothing is selected.
  EXPECT_EQ(decode_config_address(config_address(0, 2, 3, 0x43)).offset, 0x40);
  EXPECT_FALSE(decode_config_address(0x00000800u).enabled);
}

// A function that remembers the last write and answers reads with its offset and size.
class RecordingFunction final : public PciFunction {
 public:
  std::uint32_t config_read(std::uint32_t offset, std::uint32_t size) override {
    return 0xab000000u | offset << 8 | size;
  }
  void config_write(std::uint32_t offset, std::uint32_t size, std::uint32_t value) override {
    writes.push_back({offset, size, value});
  }
  struct Write {
    std::uint32_t offset, size, value;
    bool operator==(const Write&) const = default;
  };
  std::vector<Write> writes;
};

std::uint32_t bus_read(PciBus& bus, std::uint16_t port, std::size_t size) {
  std::array<std::uint8_t, 4> data{};
  bus.io(port, false, std::span(data.data(), size));
  std::uint32_t value = 0;
  std::memcpy(&value, data.data(), size);
  return value;
}

void bus_write(PciBus& bus, std::uint16_t port, std::size_t size, std::uint32_t value) {
  std::array<std::uint8_t, 4> data{};
  std::memcpy(data.data(), &value, 4);
  bus.io(port, true, std::span(data.data(), size));
}

TEST(PciBus, TheHostBridgeIsAt00_00_0) {
  PciBus bus;
  bus_write(bus, kConfigAddressPort, 4, config_address(0, 0, 0, 0));
  EXPECT_EQ(bus_read(bus, kConfigDataPort, 4), 0x29c08086u);
  bus_write(bus, kConfigAddressPort, 4, config_address(0, 0, 0, 8));
  EXPECT_EQ(bus_read(bus, kConfigDataPort, 4) >> 8, 0x060000u);  // class: host bridge
}

TEST(PciBus, AbsentFunctionsAndOtherBusesReadAllOnes) {
  PciBus bus;
  for (const auto address : {config_address(0, 5, 0, 0), config_address(1, 0, 0, 0),
                             config_address(0, 0, 1, 0), 0x00000000u}) {
    bus_write(bus, kConfigAddressPort, 4, address);
    EXPECT_EQ(bus_read(bus, kConfigDataPort, 4), 0xffffffffu) << std::hex << address;
    EXPECT_EQ(bus_read(bus, kConfigDataPort + 2, 2), 0xffffu);
  }
}

TEST(PciBus, TheAddressRegisterReadsBackOnlyAsAWholeDword) {
  PciBus bus;
  bus_write(bus, kConfigAddressPort, 4, config_address(0, 1, 0, 0x3c));
  EXPECT_EQ(bus_read(bus, kConfigAddressPort, 4), config_address(0, 1, 0, 0x3c));
  // A byte write to 0xcf8 (or 0xcf9, the reset control register on real chipsets) is not it.
  bus_write(bus, kConfigAddressPort, 1, 0);
  EXPECT_EQ(bus_read(bus, kConfigAddressPort, 4), config_address(0, 1, 0, 0x3c));
  EXPECT_EQ(bus_read(bus, kConfigAddressPort + 1, 1), 0xffu);
}

TEST(PciBus, DataPortBytesSelectTheOffsetWithinTheDword) {
  PciBus bus;
  RecordingFunction function;
  bus.attach(1, 0, function);
  bus_write(bus, kConfigAddressPort, 4, config_address(0, 1, 0, 0x40));
  EXPECT_EQ(bus_read(bus, kConfigDataPort, 4), 0xab004004u);
  EXPECT_EQ(bus_read(bus, kConfigDataPort + 2, 2), 0x4202u);  // offset 0x42, 2 bytes
  EXPECT_EQ(bus_read(bus, kConfigDataPort + 3, 1), 0x01u);    // low byte of 0xab004301
  bus_write(bus, kConfigDataPort + 1, 1, 0x5a);
  bus_write(bus, kConfigDataPort + 2, 2, 0x1234);
  bus_write(bus, kConfigDataPort, 4, 0xdeadbeef);
  EXPECT_EQ(function.writes, (std::vector<RecordingFunction::Write>{
                                 {0x41, 1, 0x5a}, {0x42, 2, 0x1234}, {0x40, 4, 0xdeadbeef}}));
}

TEST(PciBus, AccessesCrossingTheDwordAreDropped) {
  PciBus bus;
  RecordingFunction function;
  bus.attach(1, 0, function);
  bus_write(bus, kConfigAddressPort, 4, config_address(0, 1, 0, 0x40));
  EXPECT_EQ(bus_read(bus, kConfigDataPort + 3, 2), 0xffffu);
  bus_write(bus, kConfigDataPort + 2, 4, 1);
  EXPECT_TRUE(function.writes.empty());
}

TEST(PciBus, RejectsSlotsThatDoNotExist) {
  PciBus bus;
  RecordingFunction function;
  EXPECT_THROW(bus.attach(32, 0, function), Error);
  EXPECT_THROW(bus.attach(1, 8, function), Error);
}

BarSpec bar(unsigned index, pci::BarKind kind, std::uint64_t size) {
  return {index, kind, false, size};
}

TEST(BarLayout, LargestFirstNaturallyAlignedBelow4GiB) {
  const std::vector<BarSpec> bars{
      bar(0, pci::BarKind::mem32, 0x4000), bar(2, pci::BarKind::mem64, 0x1000000),
      bar(4, pci::BarKind::io, 0x20), bar(5, pci::BarKind::mem32, 0x100)};
  const auto placed = assign_bars(bars);
  ASSERT_EQ(placed.size(), 4u);
  EXPECT_EQ(placed[0].spec.index, 0u);        // sorted back by index
  EXPECT_EQ(placed[1].address, 0xc0000000u);  // 16 MiB first
  EXPECT_EQ(placed[0].address, 0xc1000000u);  // then 16 KiB
  EXPECT_EQ(placed[3].address, 0xc1004000u);  // 256 bytes still take a page
  EXPECT_EQ(placed[2].address, 0xc000u);      // I/O window
  for (const auto& p : placed) {
    EXPECT_EQ(p.address % std::max<std::uint64_t>(p.spec.size, 1), 0u) << p.spec.index;
  }
}

TEST(BarLayout, A64BitBarTooBigForTheLowWindowGoesHigh) {
  const std::vector<BarSpec> bars{bar(0, pci::BarKind::mem64, std::uint64_t{8} << 30),
                                  bar(2, pci::BarKind::mem32, 0x1000000)};
  const auto placed = assign_bars(bars);
  EXPECT_EQ(placed[0].address, std::uint64_t{1} << 36);
  EXPECT_EQ(placed[1].address, 0xc0000000u);
}

TEST(BarLayout, ErrorsNameTheBarThatDoesNotFit) {
  const std::vector<BarSpec> too_big{bar(3, pci::BarKind::mem32, std::uint64_t{2} << 30)};
  try {
    assign_bars(too_big);
    FAIL() << "a 2 GiB 32-bit BAR fit a 1 GiB window";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("BAR3 (2 GiB) does not fit in the guest's MMIO window"),
              std::string::npos)
        << e.what();
  }
  const std::vector<BarSpec> odd{bar(1, pci::BarKind::mem32, 0x3000)};
  EXPECT_THROW(assign_bars(odd), Error);
  const std::vector<BarSpec> io{bar(0, pci::BarKind::io, 0x8000), bar(1, pci::BarKind::io, 0x8000)};
  EXPECT_THROW(assign_bars(io), Error);  // 16 KiB of ports left, 32 KiB wanted
}

// Found by fuzz/bar_layout.cpp: a BAR that ended at 2^64 - 1 wrapped the window's cursor to 0,
// and the next BAR was placed over the first.
TEST(BarLayout, ABarThatTakesTheTopOfTheAddressSpaceFillsItsWindow) {
  BarWindows windows;
  windows.mmio64_start = ~std::uint64_t{0} - 0xffff;  // the last 64 KiB
  windows.mmio64_end = ~std::uint64_t{0};
  windows.mmio32_end = windows.mmio32_start;  // nothing fits below 4 GiB
  const std::vector<BarSpec> top{bar(0, pci::BarKind::mem64, 0x10000)};
  EXPECT_EQ(assign_bars(top, windows)[0].address, windows.mmio64_start);
  const std::vector<BarSpec> two{bar(0, pci::BarKind::mem64, 0x10000),
                                 bar(2, pci::BarKind::mem64, 0x1000)};
  EXPECT_THROW(assign_bars(two, windows), Error);
}

pci::MsiCapability msi(bool address_64bit, bool per_vector_masking, unsigned capable = 1) {
  pci::MsiCapability c;
  c.offset = 0x50;
  c.address_64bit = address_64bit;
  c.per_vector_masking = per_vector_masking;
  c.vectors_capable = capable;
  return c;
}

void write_word(MsiState& state, std::uint32_t offset, std::uint32_t value, unsigned bytes,
                InterruptChange* total = nullptr) {
  for (unsigned i = 0; i < bytes; ++i) {
    const auto change = state.write_byte(offset + i, static_cast<std::uint8_t>(value >> (8 * i)));
    if (total) *total |= change;
  }
}

std::uint32_t read_word(const MsiState& state, std::uint32_t offset, unsigned bytes) {
  std::uint32_t value = 0;
  for (unsigned i = 0; i < bytes; ++i)
    value |= std::uint32_t{state.read_byte(offset + i)} << (8 * i);
  return value;
}

TEST(MsiState, ControlAdvertisesTheCapabilityAndOnlyEnableAndMmeAreWritable) {
  MsiState state(msi(true, true, 8));
  EXPECT_EQ(read_word(state, 2, 2), 0x0186u);  // per-vector masking, 64-bit, 8 vectors capable
  write_word(state, 2, 0xffff, 2);
  EXPECT_EQ(read_word(state, 2, 2), 0x01f7u);  // enable, MME = 7 (clamped to 8 when used)
  EXPECT_TRUE(state.enabled());
  EXPECT_EQ(state.vectors(), 8u);
}

TEST(MsiState, The32BitLayoutPutsDataAt8AndMaskAt12) {
  MsiState state(msi(false, true, 4));
  EXPECT_FALSE(state.owns(1));
  EXPECT_TRUE(state.owns(19));  // pending bits end the capability
  EXPECT_FALSE(state.owns(20));
  InterruptChange change;
  write_word(state, 4, 0xfee01003, 4, &change);  // bits 1:0 are reserved
  write_word(state, 8, 0x4041, 2, &change);
  EXPECT_TRUE(change.message);
  EXPECT_EQ(read_word(state, 4, 4), 0xfee01000u);
  EXPECT_EQ(read_word(state, 8, 2), 0x4041u);
  InterruptChange mask;
  write_word(state, 12, 0x2, 4, &mask);
  EXPECT_TRUE(mask.mask);
  EXPECT_FALSE(mask.message);
  EXPECT_TRUE(state.masked(1));
  EXPECT_FALSE(state.masked(0));
}

TEST(MsiState, The64BitLayoutCarriesTheHighAddress) {
  MsiState state(msi(true, false));
  EXPECT_FALSE(state.owns(14));  // 64-bit without masking: 14 bytes
  write_word(state, 4, 0xfee00000, 4);
  write_word(state, 8, 0x1, 4);
  write_word(state, 12, 0x0031, 2);
  const auto message = state.message(0);
  EXPECT_EQ(message.address, 0x1fee00000ull);
  EXPECT_EQ(message.data, 0x31u);
  EXPECT_FALSE(state.masked(0));  // no per-vector masking: never masked
}

TEST(MsiState, MultipleMessagesReplaceTheLowDataBits) {
  MsiState state(msi(false, false, 4));
  write_word(state, 8, 0x0043, 2);
  write_word(state, 2, 0x0021, 2);  // enable, MME = 2 (4 vectors)
  ASSERT_EQ(state.vectors(), 4u);
  EXPECT_EQ(state.message(0).data, 0x40u);
  EXPECT_EQ(state.message(3).data, 0x43u);
}

TEST(MsiState, EnableTogglesAreReportedAsSuch) {
  MsiState state(msi(false, false));
  EXPECT_TRUE(state.write_byte(2, 1).enable);
  EXPECT_FALSE(state.write_byte(2, 1).any());
  EXPECT_TRUE(state.write_byte(2, 0).enable);
}

void table_write(MsixTable& table, std::uint64_t offset, std::uint32_t value, std::uint32_t& vector,
                 InterruptChange& change) {
  std::array<std::uint8_t, 4> bytes{};
  std::memcpy(bytes.data(), &value, 4);
  change = table.write(offset, bytes, vector);
}

TEST(MsixTable, EveryVectorStartsMasked) {
  MsixTable table(65);
  EXPECT_EQ(table.bytes(), 65u * 16);
  for (std::uint32_t v = 0; v < table.size(); ++v) EXPECT_TRUE(table.masked(v)) << v;
}

TEST(MsixTable, WritesLandInTheirEntryAndSayWhatChanged) {
  MsixTable table(4);
  std::uint32_t vector = 99;
  InterruptChange change;
  table_write(table, 2 * 16 + 0, 0xfee00000, vector, change);
  EXPECT_EQ(vector, 2u);
  EXPECT_TRUE(change.message);
  table_write(table, 2 * 16 + 8, 0x41, vector, change);
  EXPECT_TRUE(change.message);
  table_write(table, 2 * 16 + 8, 0x41, vector, change);
  EXPECT_FALSE(change.any());  // the same value again changes nothing
  table_write(table, 2 * 16 + 12, 0xfffffffe, vector, change);
  EXPECT_TRUE(change.mask);
  EXPECT_FALSE(table.masked(2));
  EXPECT_EQ(table.message(2).address, 0xfee00000u);
  EXPECT_EQ(table.message(2).data, 0x41u);
  std::array<std::uint8_t, 8> readback{};
  table.read(2 * 16 + 8, readback);
  std::uint32_t words[2];
  std::memcpy(words, readback.data(), 8);
  EXPECT_EQ(words[0], 0x41u);
  EXPECT_EQ(words[1], 0u);  // only the mask bit of vector control is kept
}

TEST(MsixTable, A64BitWriteCoversTwoFields) {
  MsixTable table(2);
  const std::uint64_t address = 0x00000001fee01000ull;
  std::array<std::uint8_t, 8> bytes{};
  std::memcpy(bytes.data(), &address, 8);
  std::uint32_t vector = 0;
  EXPECT_TRUE(table.write(16, bytes, vector).message);
  EXPECT_EQ(vector, 1u);
  EXPECT_EQ(table.message(1).address, address);
}

TEST(MsixTable, MisalignedOrOutsideAccessesDoNothing) {
  MsixTable table(2);
  std::uint32_t vector = 7;
  InterruptChange change;
  table_write(table, 2, 0x12345678, vector, change);  // not aligned
  EXPECT_FALSE(change.any());
  table_write(table, 32, 0x12345678, vector, change);  // past the end
  EXPECT_FALSE(change.any());
  std::array<std::uint8_t, 2> narrow{0xaa, 0xaa};
  EXPECT_FALSE(table.write(0, narrow, vector).any());
  std::array<std::uint8_t, 4> outside{1, 2, 3, 4};
  table.read(64, outside);
  EXPECT_EQ(outside, (std::array<std::uint8_t, 4>{}));
  EXPECT_EQ(vector, 7u);
  EXPECT_THROW((void)table.message(2), std::out_of_range);
}

TEST(MsixTable, OffsetsNearTheTopOfTheAddressSpaceDoNotWrapIntoTheTable) {
  MsixTable table(2);
  std::uint32_t vector = 7;
  for (const std::uint64_t offset : {~std::uint64_t{0} - 7, ~std::uint64_t{0} - 3,
                                     ~std::uint64_t{0} - 15, std::uint64_t{1} << 63}) {
    std::array<std::uint8_t, 8> wide{1, 2, 3, 4, 5, 6, 7, 8};
    table.read(offset, wide);
    EXPECT_EQ(wide, (std::array<std::uint8_t, 8>{})) << std::hex << offset;
    EXPECT_FALSE(table.write(offset, wide, vector).any()) << std::hex << offset;
    std::array<std::uint8_t, 4> narrow{0, 0, 0, 0};
    EXPECT_FALSE(table.write(offset, narrow, vector).any()) << std::hex << offset;
  }
  EXPECT_EQ(vector, 7u);
  EXPECT_TRUE(table.masked(0));
  EXPECT_TRUE(table.masked(1));
}

TEST(MsixControl, EnableAndFunctionMaskAreTheWritableBits) {
  MsixControl control{.table_size_field = 64};
  EXPECT_EQ(control.value(), 64u);
  auto change = control.write_high_byte(0xc0);
  EXPECT_TRUE(change.enable);
  EXPECT_TRUE(change.mask);
  EXPECT_EQ(control.value(), 0xc040u);
  change = control.write_high_byte(0x80);
  EXPECT_FALSE(change.enable);
  EXPECT_TRUE(change.mask);
  EXPECT_EQ(control.value(), 0x8040u);
  EXPECT_FALSE(control.write_high_byte(0xbf).any());  // reserved bits are ignored
}

TEST(DoneCodes, ADeviceThePayloadDoesNotDriveIsNamedWithWhatItIs) {
  EXPECT_EQ(describe_done_code(VFIOKIT_DONE_NOT_EDU, 0x10d38086),
            "00:01.0 is 8086:10d3, not the edu device (1234:11e8) this payload drives");
  EXPECT_EQ(describe_done_code(VFIOKIT_DONE_NOT_NVME, 0x11e81234),
            "00:01.0 is 1234:11e8, not the NVMe controller (class 01:08:02) this payload drives");
  EXPECT_EQ(describe_done_code(VFIOKIT_DONE_NOT_EDU),
            "00:01.0 is not the edu device (1234:11e8) this payload drives");
  // Nothing there at all is another matter.
  EXPECT_EQ(describe_done_code(VFIOKIT_DONE_NO_DEVICE), "the device is not on the guest's PCI bus");
  EXPECT_EQ(describe_done_code(VFIOKIT_DONE_EXCEPTION | 14), "exception 0xe (page fault)");
  EXPECT_EQ(describe_done_code(0x0234), "failure code 0x234");
}

TEST(ShellQuote, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(shell_quote({"qemu", "-append", "console=ttyS0 quiet", "it's", ""}),
            "qemu -append 'console=ttyS0 quiet' 'it'\\''s' ''");
  EXPECT_EQ(shell_quote({"-device", "vfio-pci,host=0000:01:00.0"}),
            "-device vfio-pci,host=0000:01:00.0");
  EXPECT_EQ(shell_quote({"a;b", "$HOME", "*"}), "'a;b' '$HOME' '*'");
}

// ---- INTx ------------------------------------------------------------------------------------

TEST(IntxRouting, PinsSwizzleOverThePirqLinesAtIoapicInputs16To19) {
  EXPECT_EQ(intx_gsi(1, 1), 17u);  // the payloads' 00:01.0, INTA#
  EXPECT_EQ(intx_gsi(1, 4), 16u);
  EXPECT_EQ(intx_gsi(0, 1), 16u);
  EXPECT_EQ(intx_gsi(3, 2), 16u);
  EXPECT_EQ(intx_gsi(31, 3), 17u);
  EXPECT_EQ(intx_gsi(1, 0), std::nullopt);  // no pin
  EXPECT_EQ(intx_gsi(1, 5), std::nullopt);  // no such pin
}

using test::FakeDevice;
using test::FakeVm;
using test::Journal;

constexpr std::uint32_t kIntxMsi = 0x40;
constexpr std::uint32_t kIntxPm = 0x50;
constexpr std::uint32_t kIntxMsix = 0x60;

// An edu-like function with pin INTA# and MSI (32-bit), a power management capability and
// MSI-X (4 vectors, table in BAR0): MSI -> PM -> MSI-X.
std::vector<std::uint8_t> intx_config(std::uint8_t pin = 1, bool pm = true) {
  test::ConfigBuilder c(256);
  c.endpoint(0x1234, 0x11e8, kIntxMsi);
  c.u32(PCI_BASE_ADDRESS_0, 0xfea00000);
  c.u8(PCI_INTERRUPT_LINE, 11).u8(PCI_INTERRUPT_PIN, pin);
  c.cap(kIntxMsi, PCI_CAP_ID_MSI, pm ? kIntxPm : kIntxMsix).u16(kIntxMsi + PCI_MSI_FLAGS, 0);
  if (pm) c.cap(kIntxPm, PCI_CAP_ID_PM, kIntxMsix);
  c.cap(kIntxMsix, PCI_CAP_ID_MSIX, 0).u16(kIntxMsix + PCI_MSIX_FLAGS, 3);
  c.u32(kIntxMsix + PCI_MSIX_TABLE, 0x800).u32(kIntxMsix + PCI_MSIX_PBA, 0xc00);
  return c.bytes();
}

class Intx : public testing::Test {
 protected:
  explicit Intx(std::vector<std::uint8_t> config = intx_config(),
                std::uint32_t msix_flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE)
      : device(config, &journal) {
    device.add_bar(0, 0x1000, std::vector<vfio::SparseArea>{});
    device.add_irq(VFIO_PCI_INTX_IRQ_INDEX, 1,
                   VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED);
    device.add_irq(VFIO_PCI_MSI_IRQ_INDEX, 1, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
    device.add_irq(VFIO_PCI_MSIX_IRQ_INDEX, 4, msix_flags);
  }
  std::uint32_t mmio_read32(std::uint64_t address) {
    std::array<std::uint8_t, 4> data{};
    EXPECT_TRUE(model->mmio({address, 4, false}, data));
    std::uint32_t value = 0;
    std::memcpy(&value, data.data(), 4);
    return value;
  }
  void mmio_write32(std::uint64_t address, std::uint32_t value) {
    std::array<std::uint8_t, 4> data{};
    std::memcpy(data.data(), &value, 4);
    EXPECT_TRUE(model->mmio({address, 4, true}, data));
  }

  PassthroughDevice& start(InterruptOptions options = {}) {
    model.emplace(device, vm, routes, BarWindows{}, options);
    journal.clear();
    device.accesses.clear();
    device.irq_sets.clear();
    return *model;
  }
  std::uint32_t read(std::uint32_t offset, std::uint32_t size) {
    return model->config_read(offset, size);
  }
  void write(std::uint32_t offset, std::uint32_t size, std::uint32_t value) {
    model->config_write(offset, size, value);
  }
  // The capability IDs the guest finds walking the list from 0x34, as a guest walks it.
  std::vector<std::uint8_t> capability_walk() {
    std::vector<std::uint8_t> ids;
    if (!(read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return ids;
    for (std::uint32_t at = read(PCI_CAPABILITY_LIST, 1); at != 0 && ids.size() < 48;
         at = read(at + PCI_CAP_LIST_NEXT, 1)) {
      ids.push_back(static_cast<std::uint8_t>(read(at, 1)));
    }
    return ids;
  }
  int intx_trigger() const { return device.eventfds(VFIO_PCI_INTX_IRQ_INDEX).at(0); }
  // The eventfd given to VFIO as INTx's unmask eventfd, last.
  std::optional<int> intx_unmask_eventfd() const {
    std::optional<int> fd;
    for (const auto& set : device.irq_sets) {
      if (set.index == VFIO_PCI_INTX_IRQ_INDEX &&
          set.flags == (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK)) {
        fd = set.eventfds.at(0);
      }
    }
    return fd;
  }

  Journal journal;
  FakeDevice device;
  FakeVm vm{&journal};
  msix::RouteTable routes{vm};
  std::optional<PassthroughDevice> model;
};

TEST_F(Intx, ThePinShowsAndTheLineNamesItsIoapicInput) {
  start({.slot = 1});
  EXPECT_EQ(read(PCI_INTERRUPT_PIN, 1), 1u);
  EXPECT_EQ(read(PCI_INTERRUPT_LINE, 1), 17u);  // not the host's 11
  EXPECT_EQ(read(PCI_INTERRUPT_LINE, 2), 0x0111u);
  // Line is the guest's scratch byte; the pin is read-only; neither reaches the device.
  write(PCI_INTERRUPT_LINE, 2, 0xff05);
  EXPECT_EQ(read(PCI_INTERRUPT_LINE, 2), 0x0105u);
  EXPECT_TRUE(device.accesses.empty());
  EXPECT_EQ(device.config()[PCI_INTERRUPT_LINE], 11);
  // The wiring stays on the pin's input, whatever the guest noted.
  EXPECT_EQ(model->interrupts().intx_gsi(), 17u);
  model.reset();
  start({.slot = 3});
  EXPECT_EQ(read(PCI_INTERRUPT_LINE, 1), 19u);
}

TEST_F(Intx, IsWiredFromTheStartAsAResamplingIrqfdWhoseResampleUnmasksInVfio) {
  model.emplace(device, vm, routes);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_INTX_IRQ_INDEX);
  // VFIO's trigger first (the eventfd exists once INTx is on), then KVM, then the unmask path.
  EXPECT_EQ(journal, (Journal{"SET_IRQS INTx 0+1 eventfds", "irqfd gsi 17 on, resampled",
                              "SET_IRQS INTx unmask"}))
      << testing::PrintToString(journal);
  ASSERT_EQ(vm.irqfds.count(intx_trigger()), 1u);
  EXPECT_EQ(vm.irqfds.at(intx_trigger()), 17u);
  // The resample eventfd KVM signals at EOI is the one VFIO unmasks INTx on.
  const auto unmask = intx_unmask_eventfd();
  ASSERT_TRUE(unmask.has_value());
  ASSERT_EQ(vm.resamplefds.count(intx_trigger()), 1u);
  EXPECT_EQ(vm.resamplefds.at(intx_trigger()), *unmask);
  EXPECT_NE(*unmask, intx_trigger());
  // The device raising INTx signals the eventfd KVM injects from.
  EXPECT_TRUE(device.fire(VFIO_PCI_INTX_IRQ_INDEX, 0));
  EXPECT_TRUE(test::signalled(intx_trigger()));
}

TEST_F(Intx, MsiTakesOverFromIntxAndGivesItBackWhenTurnedOff) {
  start();
  write(kIntxMsi + PCI_MSI_ADDRESS_LO, 4, 0xfee00000);
  write(kIntxMsi + PCI_MSI_DATA_32, 2, 0x41);
  journal.clear();
  write(kIntxMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_MSI_IRQ_INDEX);
  // INTx goes first: irqfd off, then VFIO's INTx off (the fake, like vfio-pci, refuses MSI
  // while INTx is on).
  ASSERT_GE(journal.size(), 3u);
  EXPECT_EQ(journal[0], "irqfd gsi 17 off");
  EXPECT_EQ(journal[1], "SET_IRQS INTx off");
  EXPECT_TRUE(vm.resamplefds.empty());
  journal.clear();
  write(kIntxMsi + PCI_MSI_FLAGS, 2, 0);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_INTX_IRQ_INDEX);
  EXPECT_EQ(vm.irqfds.at(intx_trigger()), 17u);
  EXPECT_EQ(vm.resamplefds.size(), 1u);
}

TEST_F(Intx, MsixTakesOverFromIntxAndGivesItBackWhenTurnedOff) {
  start();
  write(kIntxMsix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_MSIX_IRQ_INDEX);
  EXPECT_TRUE(vm.resamplefds.empty());
  write(kIntxMsix + PCI_MSIX_FLAGS, 2, 0);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_INTX_IRQ_INDEX);
  EXPECT_EQ(vm.resamplefds.size(), 1u);
}

TEST_F(Intx, InterruptDisableGoesToVfioWhichMasksTheLine) {
  start();
  write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
  // One 2-byte write with the bit, for vfio-pci to mask INTx (vfio_pci_intx_mask); the
  // wiring stays as it is, so clearing the bit lets a held-back interrupt through.
  ASSERT_EQ(device.accesses.size(), 1u);
  EXPECT_EQ(device.accesses[0],
            (FakeDevice::Access{VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, 2, true,
                                PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE}));
  EXPECT_EQ(read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_INTX_DISABLE);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_INTX_IRQ_INDEX);
  write(PCI_COMMAND + 1, 1, 0);
  EXPECT_EQ(read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE, 0u);
  EXPECT_EQ(device.accesses.size(), 2u);
}

TEST_F(Intx, IntxOnlyHidesMsiAndMsixFromTheCapabilityList) {
  start();
  EXPECT_EQ(capability_walk(),
            (std::vector<std::uint8_t>{PCI_CAP_ID_MSI, PCI_CAP_ID_PM, PCI_CAP_ID_MSIX}));
  model.reset();
  start({.intx_only = true});
  EXPECT_EQ(capability_walk(), (std::vector<std::uint8_t>{PCI_CAP_ID_PM}));
  EXPECT_EQ(read(PCI_CAPABILITY_LIST, 1), kIntxPm);
  EXPECT_EQ(read(kIntxPm, 2), PCI_CAP_ID_PM);  // next: 0, not MSI-X
  EXPECT_EQ(read(PCI_INTERRUPT_PIN, 1), 1u);
  // The MSI registers are not emulated: a guest that writes them anyway enables nothing.
  write(kIntxMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_INTX_IRQ_INDEX);
  // Nothing of the MSI-X table is trapped for a capability the guest cannot see.
  EXPECT_TRUE(model->interrupts().trapped_pages(0).empty());
}

class IntxWithoutOtherCapabilities : public Intx {
 protected:
  IntxWithoutOtherCapabilities() : Intx(intx_config(1, false)) {}
};

TEST_F(IntxWithoutOtherCapabilities, HidingEveryCapabilityClearsCapabilitiesList) {
  start({.intx_only = true});
  EXPECT_EQ(read(PCI_CAPABILITY_LIST, 1), 0u);
  EXPECT_EQ(read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0u);
  EXPECT_TRUE(capability_walk().empty());
  model.reset();
  start();
  EXPECT_EQ(read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
  EXPECT_EQ(capability_walk(), (std::vector<std::uint8_t>{PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX}));
}

class IntxWithoutPin : public Intx {
 protected:
  IntxWithoutPin() : Intx(intx_config(0)) {}
};

TEST_F(IntxWithoutPin, NoPinIsNoIntxAndIntxOnlyIsRefused) {
  start();
  EXPECT_EQ(read(PCI_INTERRUPT_PIN, 1), 0u);
  EXPECT_EQ(model->interrupts().wired_index(), std::nullopt);
  EXPECT_TRUE(vm.irqfds.empty());
  // Without a pin, Interrupt Line is the device's (vfio-pci's virtual) byte.
  EXPECT_EQ(read(PCI_INTERRUPT_LINE, 1), 11u);
  model.reset();
  try {
    start({.intx_only = true});
    ADD_FAILURE() << "a device without a pin was given to an INTx-only guest";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no INTx pin"), std::string::npos) << e.what();
  }
}

TEST(IntxUnavailable, APinVfioCannotServeIsShownAsNoneUnlessIntxIsRequired) {
  Journal journal;
  FakeDevice device(intx_config(), &journal);
  device.add_bar(0, 0x1000);
  // vfio-pci offers INTx, but not on an eventfd: the VMM cannot wire it.
  device.add_irq(VFIO_PCI_INTX_IRQ_INDEX, 1, 0);
  FakeVm vm(&journal);
  msix::RouteTable routes(vm);
  {
    PassthroughDevice model(device, vm, routes);
    EXPECT_EQ(model.config_read(PCI_INTERRUPT_PIN, 1), 0u);
    EXPECT_EQ(model.interrupts().intx_gsi(), std::nullopt);
    EXPECT_EQ(model.interrupts().wired_index(), std::nullopt);
  }
  EXPECT_THROW([&] { PassthroughDevice required(device, vm, routes, {}, {.intx_only = true}); }(),
               Error);
}

TEST_F(Intx, TeardownTakesTheIrqfdAwayBeforeVfiosIntx) {
  start();
  model.reset();
  EXPECT_EQ(journal.size() >= 2 ? Journal(journal.begin(), journal.begin() + 2) : journal,
            (Journal{"irqfd gsi 17 off", "SET_IRQS INTx off"}))
      << testing::PrintToString(journal);
  EXPECT_TRUE(vm.irqfds.empty());
}

// ---- Function level reset --------------------------------------------------------------------

constexpr std::uint32_t kFlrPcie = 0x70;
constexpr std::uint64_t kFlrTable = 0xc0000800;  // BAR0 at 0xc0000000, table at 0x800
constexpr std::uint64_t kFlrPba = 0xc0000c00;

// A PCIe endpoint with pin INTA#, MSI -> MSI-X -> PCIe, FLR in Device Capabilities or not.
std::vector<std::uint8_t> flr_config(bool flr) {
  test::ConfigBuilder c(256);
  c.endpoint(0x1234, 0x11e8, kIntxMsi);
  c.u32(PCI_BASE_ADDRESS_0, 0xfea00000);
  c.u8(PCI_INTERRUPT_LINE, 11).u8(PCI_INTERRUPT_PIN, 1);
  c.cap(kIntxMsi, PCI_CAP_ID_MSI, kIntxMsix).u16(kIntxMsi + PCI_MSI_FLAGS, 0);
  c.cap(kIntxMsix, PCI_CAP_ID_MSIX, kFlrPcie).u16(kIntxMsix + PCI_MSIX_FLAGS, 3);
  c.u32(kIntxMsix + PCI_MSIX_TABLE, 0x800).u32(kIntxMsix + PCI_MSIX_PBA, 0xc00);
  c.cap(kFlrPcie, PCI_CAP_ID_EXP, 0).u16(kFlrPcie + PCI_EXP_FLAGS, 2);
  c.u32(kFlrPcie + PCI_EXP_DEVCAP, flr ? PCI_EXP_DEVCAP_FLR : 0);
  return c.bytes();
}

class Flr : public Intx {
 protected:
  explicit Flr(bool flr = true) : Intx(flr_config(flr)) {}
  void initiate_flr() {
    write(kFlrPcie + PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_RELAX_EN);
  }
};

TEST_F(Flr, UnwiresResetsTheDeviceThenTheEmulatedStateAndWiresIntxAgain) {
  start();
  write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  write(kIntxMsix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  mmio_write32(kFlrTable, 0xfee00000);
  mmio_write32(kFlrTable + 8, 0x41);
  mmio_write32(kFlrTable + 12, 0);  // unmasked
  ASSERT_EQ(model->interrupts().wired_index(), VFIO_PCI_MSIX_IRQ_INDEX);
  journal.clear();
  device.accesses.clear();
  initiate_flr();
  EXPECT_EQ(device.resets, 1u);
  // The MSI-X vector's irqfd and VFIO's MSI-X go before the reset; INTx comes back after it.
  const auto at = [&](const std::string& line) {
    return std::find(journal.begin(), journal.end(), line) - journal.begin();
  };
  ASSERT_LT(at("reset"), static_cast<std::ptrdiff_t>(journal.size()))
      << testing::PrintToString(journal);
  EXPECT_LT(at("SET_IRQS MSI-X off"), at("reset")) << testing::PrintToString(journal);
  EXPECT_LT(at("reset"), at("SET_IRQS INTx 0+1 eventfds")) << testing::PrintToString(journal);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_INTX_IRQ_INDEX);
  // Initiate FLR never reached the device and reads 0; the rest of Device Control did.
  ASSERT_FALSE(device.accesses.empty());
  EXPECT_EQ(device.accesses.front(),
            (FakeDevice::Access{VFIO_PCI_CONFIG_REGION_INDEX, kFlrPcie + PCI_EXP_DEVCTL, 2, true,
                                PCI_EXP_DEVCTL_RELAX_EN}));
  EXPECT_EQ(read(kFlrPcie + PCI_EXP_DEVCTL, 2), PCI_EXP_DEVCTL_RELAX_EN);
  // The command register as after a reset: the BARs do not decode until the guest says so.
  EXPECT_EQ(read(PCI_COMMAND, 2), 0u);
  EXPECT_EQ(mmio_read32(kFlrTable + 12), 0xffffffffu);
  write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  // MSI-X off, the table masked and empty, nothing pending.
  EXPECT_EQ(read(kIntxMsix + PCI_MSIX_FLAGS, 2), 3u);
  EXPECT_EQ(mmio_read32(kFlrTable), 0u);
  EXPECT_EQ(mmio_read32(kFlrTable + 8), 0u);
  EXPECT_EQ(mmio_read32(kFlrTable + 12), PCI_MSIX_ENTRY_CTRL_MASKBIT);
  EXPECT_EQ(mmio_read32(kFlrPba), 0u);
  // And it works again as from power-up.
  write(kIntxMsix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_MSIX_IRQ_INDEX);
}

TEST_F(Flr, MsiGoesBackToItsResetValues) {
  start();
  write(kIntxMsi + PCI_MSI_ADDRESS_LO, 4, 0xfee00000);
  write(kIntxMsi + PCI_MSI_DATA_32, 2, 0x41);
  write(kIntxMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  ASSERT_EQ(model->interrupts().wired_index(), VFIO_PCI_MSI_IRQ_INDEX);
  initiate_flr();
  EXPECT_EQ(read(kIntxMsi + PCI_MSI_FLAGS, 2), 0u);
  EXPECT_EQ(read(kIntxMsi + PCI_MSI_ADDRESS_LO, 4), 0u);
  EXPECT_EQ(read(kIntxMsi + PCI_MSI_DATA_32, 2), 0u);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_INTX_IRQ_INDEX);
  EXPECT_TRUE(vm.irqfds.size() == 1 && vm.resamplefds.size() == 1);
}

class FlrNotOffered : public Flr {
 protected:
  FlrNotOffered() : Flr(false) {}
};

TEST_F(FlrNotOffered, TheBitGoesToVfioPciWhichIgnoresIt) {
  start();
  write(kIntxMsi + PCI_MSI_ADDRESS_LO, 4, 0xfee00000);
  write(kIntxMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  device.accesses.clear();
  initiate_flr();
  EXPECT_EQ(device.resets, 0u);
  EXPECT_EQ(model->interrupts().wired_index(), VFIO_PCI_MSI_IRQ_INDEX);
  ASSERT_EQ(device.accesses.size(), 1u);
  EXPECT_EQ(device.accesses[0].value, PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_RELAX_EN);
}

// ---- Adding MSI-X vectors while enabled ---------------------------------------------------------

constexpr std::uint64_t kIntxTable = 0xc0000800;  // BAR0 at 0xc0000000, table at 0x800

class DynamicMsix : public Intx {
 protected:
  // Linux 6.5+: the MSI-X index without NORESIZE.
  DynamicMsix() : Intx(intx_config(), VFIO_IRQ_INFO_EVENTFD) {}
};

TEST_F(DynamicMsix, VectorsAreAddedWhileEnabledWithNoGap) {
  start();
  write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  write(kIntxMsix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  mmio_write32(kIntxTable, 0xfee00000);
  mmio_write32(kIntxTable + 8, 0x41);
  mmio_write32(kIntxTable + 12, 0);
  const int vector0 = device.eventfds(VFIO_PCI_MSIX_IRQ_INDEX).at(0);
  ASSERT_GE(vector0, 0);
  journal.clear();
  device.irq_sets.clear();
  mmio_write32(kIntxTable + 2 * 16, 0xfee00000);
  mmio_write32(kIntxTable + 2 * 16 + 8, 0x43);
  mmio_write32(kIntxTable + 2 * 16 + 12, 0);
  // VFIO is given vectors 1 and 2 only; vector 0 never goes off, keeps its eventfd and irqfd.
  ASSERT_EQ(device.irq_sets.size(), 1u);
  EXPECT_EQ(device.irq_sets[0].flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER);
  EXPECT_EQ(device.irq_sets[0].start, 1u);
  EXPECT_EQ(device.irq_sets[0].count, 2u);
  EXPECT_EQ(device.eventfds(VFIO_PCI_MSIX_IRQ_INDEX).at(0), vector0);
  for (const auto& line : journal) EXPECT_EQ(line.find(" off"), std::string::npos) << line;
  EXPECT_TRUE(vm.delivers(vector0).has_value());
  const int vector2 = device.eventfds(VFIO_PCI_MSIX_IRQ_INDEX).at(2);
  EXPECT_EQ(vm.delivers(vector2), (msix::MsiMessage{0xfee00000, 0x43}));
  EXPECT_FALSE(vm.delivers(device.eventfds(VFIO_PCI_MSIX_IRQ_INDEX).at(1)).has_value());
  EXPECT_FALSE(test::signalled(vector0));  // no interrupt made up
}

TEST_F(Intx, WithNoresizeTheGapEndsWithTheLiveVectorsFiredOnce) {
  start();
  write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  write(kIntxMsix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  mmio_write32(kIntxTable, 0xfee00000);
  mmio_write32(kIntxTable + 8, 0x41);
  mmio_write32(kIntxTable + 12, 0);
  const int vector0 = device.eventfds(VFIO_PCI_MSIX_IRQ_INDEX).at(0);
  journal.clear();
  mmio_write32(kIntxTable + 2 * 16 + 12, 0);
  const auto at = [&](const std::string& line) {
    return std::find(journal.begin(), journal.end(), line) - journal.begin();
  };
  const auto end = static_cast<std::ptrdiff_t>(journal.size());
  // Off and on again with every vector, vector 0 keeping its eventfd and irqfd, then fired.
  EXPECT_LT(at("SET_IRQS MSI-X off"), at("SET_IRQS MSI-X 0+3 eventfds"))
      << testing::PrintToString(journal);
  EXPECT_LT(at("SET_IRQS MSI-X 0+3 eventfds"), at("SET_IRQS MSI-X loopback"))
      << testing::PrintToString(journal);
  EXPECT_LT(at("SET_IRQS MSI-X loopback"), end) << testing::PrintToString(journal);
  EXPECT_EQ(std::count(journal.begin(), journal.end(), "SET_IRQS MSI-X loopback"), 1);
  EXPECT_EQ(device.eventfds(VFIO_PCI_MSIX_IRQ_INDEX).at(0), vector0);
  EXPECT_TRUE(vm.delivers(vector0).has_value());
  EXPECT_TRUE(test::signalled(vector0));
  // Vector 1 stays masked and was not made pending.
  EXPECT_FALSE(test::signalled(device.eventfds(VFIO_PCI_MSIX_IRQ_INDEX).at(1)));
}

}  // namespace
}  // namespace vfiokit::vmm
