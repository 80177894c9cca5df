// The VMM's device model (vmm/passthrough.h and its parts) against a fake vfio-pci device and a
// fake VM: every guest-visible behaviour of BARs, config space, MSI, MSI-X and trapped accesses,
// and what the host is asked to do for each.
#include <gtest/gtest.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "tests/unit/config_builder.h"
#include "tests/unit/fake_device.h"
#include "vfiokit/base/error.h"
#include "vfiokit/vmm/passthrough.h"
#include "vfiokit/vmm/pci_bus.h"

namespace vfiokit::vmm {
namespace {

using test::FakeDevice;
using test::FakeVm;
using test::Journal;

constexpr std::uint32_t kMsi = 0x40;
constexpr std::uint32_t kMsix = 0x60;
constexpr std::uint32_t kMsiIndex = VFIO_PCI_MSI_IRQ_INDEX;
constexpr std::uint32_t kMsixIndex = VFIO_PCI_MSIX_IRQ_INDEX;
constexpr std::uint32_t kConfigIndex = VFIO_PCI_CONFIG_REGION_INDEX;

// Where the VMM puts the BARs below (largest first from 0xc0000000, I/O from 0xc000).
constexpr std::uint64_t kBar4 = 0xc0000000;  // 1 MiB mem64 prefetchable
constexpr std::uint64_t kBar0 = 0xc0100000;  // 16 KiB mem64: MSI-X table and PBA
constexpr std::uint64_t kBar2 = 0xc0104000;  // 256 bytes mem32
constexpr std::uint64_t kBar3 = 0xc000;      // 32 ports
constexpr std::uint64_t kTable = kBar0 + 0x2000;
constexpr std::uint64_t kPba = kBar0 + 0x3000;

// An NVMe-like function with every kind of BAR and both interrupt capabilities: MSI (64-bit,
// per-vector masking, 4 vectors) and MSI-X (8 vectors, table and PBA in BAR0).
std::vector<std::uint8_t> full_config() {
  test::ConfigBuilder c(256);
  c.endpoint(0x1b36, 0x0010, kMsi);
  c.u8(PCI_REVISION_ID, 2).u8(PCI_CLASS_PROG, 0x02).u16(PCI_CLASS_DEVICE, 0x0108);
  c.u32(PCI_BASE_ADDRESS_0, 0xfeb00004).u32(PCI_BASE_ADDRESS_1, 0);  // mem64
  c.u32(PCI_BASE_ADDRESS_2, 0xfea00000);                             // mem32
  c.u32(PCI_BASE_ADDRESS_3, 0x0000c041);                             // I/O
  c.u32(PCI_BASE_ADDRESS_4, 0x0000000c).u32(PCI_BASE_ADDRESS_5, 8);  // mem64 prefetchable
  c.u32(PCI_SUBSYSTEM_VENDOR_ID, 0x11001af4).u32(PCI_ROM_ADDRESS, 0xfeb80001);
  c.u8(PCI_INTERRUPT_LINE, 11).u8(PCI_INTERRUPT_PIN, 1);
  c.cap(kMsi, PCI_CAP_ID_MSI, kMsix)
      .u16(kMsi + PCI_MSI_FLAGS, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | 2 << 1);
  c.cap(kMsix, PCI_CAP_ID_MSIX, 0).u16(kMsix + PCI_MSIX_FLAGS, 7);
  c.u32(kMsix + PCI_MSIX_TABLE, 0x2000).u32(kMsix + PCI_MSIX_PBA, 0x3000);
  c.u32(0x80, 0x12345678);  // the device's own registers, in no capability
  return c.bytes();
}

std::uint64_t little_endian(std::span<const std::uint8_t> bytes) {
  std::uint64_t value = 0;
  std::memcpy(&value, bytes.data(), std::min(bytes.size(), sizeof value));
  return value;
}

class Passthrough : public testing::Test {
 protected:
  Passthrough() : device(full_config(), &journal), vm(&journal) {
    // vfio-pci lets everything but the MSI-X table's page be mmap()ed.
    device.add_bar(0, 0x4000, std::vector<vfio::SparseArea>{{0, 0x2000}, {0x3000, 0x1000}});
    device.add_bar(2, 0x100);
    device.add_io_bar(3, 0x20);
    device.add_bar(4, 0x100000);
    device.add_irq(kMsiIndex, 4, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
    device.add_irq(kMsixIndex, 8, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
  }

  PassthroughDevice& start() {
    model.emplace(device, vm, routes);
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
  void decode(std::uint16_t command) { write(PCI_COMMAND, 2, command); }

  std::uint64_t mmio_read(std::uint64_t address, std::uint32_t size) {
    std::array<std::uint8_t, 8> data{};
    EXPECT_TRUE(model->mmio({address, size, false}, std::span(data.data(), size)));
    return little_endian(std::span(data.data(), size));
  }
  void mmio_write(std::uint64_t address, std::uint32_t size, std::uint64_t value) {
    std::array<std::uint8_t, 8> data{};
    std::memcpy(data.data(), &value, 8);
    EXPECT_TRUE(model->mmio({address, size, true}, std::span(data.data(), size)));
  }

  // The message an interrupt on vector `v` of `index` reaches the guest with; nullopt when its
  // eventfd goes nowhere (not wired, or masked).
  std::optional<msix::MsiMessage> delivered(std::uint32_t index, std::uint32_t v) const {
    const auto fds = device.eventfds(index);
    if (v >= fds.size() || fds[v] < 0) return std::nullopt;
    return vm.delivers(fds[v]);
  }
  std::size_t wired(std::uint32_t index) const {
    const auto fds = device.eventfds(index);
    return static_cast<std::size_t>(
        std::count_if(fds.begin(), fds.end(), [](int fd) { return fd >= 0; }));
  }
  int eventfd(std::uint32_t index, std::uint32_t v) const { return device.eventfds(index).at(v); }

  void msi_message(std::uint64_t address, std::uint16_t data) {
    write(kMsi + PCI_MSI_ADDRESS_LO, 4, static_cast<std::uint32_t>(address));
    write(kMsi + PCI_MSI_ADDRESS_HI, 4, static_cast<std::uint32_t>(address >> 32));
    write(kMsi + PCI_MSI_DATA_64, 2, data);
  }
  void msix_entry(std::uint32_t v, std::uint64_t address, std::uint32_t data, bool masked) {
    mmio_write(kTable + 16 * v, 8, address);
    mmio_write(kTable + 16 * v + 8, 4, data);
    mmio_write(kTable + 16 * v + 12, 4, masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
  }
  void msix_mask(std::uint32_t v, bool masked) {
    mmio_write(kTable + 16 * v + 12, 4, masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0);
  }
  void msix_control(std::uint16_t value) { write(kMsix + PCI_MSIX_FLAGS, 2, value); }

  std::vector<FakeDevice::Access> config_writes() const {
    std::vector<FakeDevice::Access> writes;
    for (const auto& a : device.accesses) {
      if (a.region == kConfigIndex) writes.push_back(a);
    }
    return writes;
  }

  Journal journal;
  FakeDevice device;
  FakeVm vm;
  msix::RouteTable routes{vm};
  std::optional<PassthroughDevice> model;
};

std::size_t position(const Journal& journal, const std::string& prefix, bool last = false) {
  std::size_t found = journal.size();
  for (std::size_t i = 0; i < journal.size(); ++i) {
    if (journal[i].rfind(prefix, 0) == 0) {
      found = i;
      if (!last) break;
    }
  }
  return found;
}

// ---- Layout and slots ----------------------------------------------------------------------

TEST_F(Passthrough, LaysOutEveryKindOfBarAndMapsWhatVfioLetsItMmap) {
  const PassthroughDevice& d = start();
  EXPECT_EQ(d.describe(),
            (std::vector<std::string>{
                "BAR0 16 KiB mem64 at 0xc0100000 (8 KiB mapped into the guest, 8 KiB trapped)",
                "BAR2 256 B mem32 at 0xc0104000 (0 B mapped into the guest, 256 B trapped)",
                "BAR3 32 B io at 0xc000 (trapped)",
                "BAR4 1 MiB mem64 at 0xc0000000 (1 MiB mapped into the guest, 0 B trapped)"}));
  // BAR0's pages before the MSI-X table; not the table's page, nor the PBA's (mappable, but
  // emulated); all of BAR4; nothing of BAR2, which is smaller than a page.
  EXPECT_EQ(d.memory_slots(), 2u);
  ASSERT_NE(vm.slots().containing(kBar0), nullptr);
  EXPECT_EQ(vm.slots().containing(kBar0)->size, 0x2000u);
  EXPECT_EQ(vm.slots().containing(kPba), nullptr);
  EXPECT_EQ(vm.slots().containing(kBar4)->size, 0x100000u);
  // A guest access through a slot is the device's memory.
  const auto guest = vm.guest_memory(kBar4 + 0x10, 4);
  ASSERT_EQ(guest.size(), 4u);
  guest[0] = 0x5a;
  EXPECT_EQ(device.bar_memory(4)[0x10], 0x5a);
}

TEST_F(Passthrough, AnAreaTheKernelWillNotMapStaysTrapped) {
  device.refuse_mmap = true;
  const PassthroughDevice& d = start();
  EXPECT_EQ(d.memory_slots(), 0u);
  decode(PCI_COMMAND_MEMORY);
  device.bar_memory(4)[0x20] = 0x77;
  EXPECT_EQ(mmio_read(kBar4 + 0x20, 1), 0x77u);
  EXPECT_EQ(device.accesses.back(), (FakeDevice::Access{4, 0x20, 1, false, 0x77}));
}

// ---- BAR sizing and moves ------------------------------------------------------------------

TEST_F(Passthrough, SizingReadsTheSizeMaskWithTheTypeBits) {
  start();
  struct Case {
    std::uint32_t offset, mask;
  };
  for (const Case& c : {Case{PCI_BASE_ADDRESS_0, 0xffffc004},  // 16 KiB mem64, low half
                        Case{PCI_BASE_ADDRESS_1, 0xffffffff},  // its high half
                        Case{PCI_BASE_ADDRESS_2, 0xffffff00},  // 256 bytes mem32
                        Case{PCI_BASE_ADDRESS_3, 0xffffffe1},  // 32 ports
                        Case{PCI_BASE_ADDRESS_4, 0xfff0000c},  // 1 MiB mem64 prefetchable
                        Case{PCI_BASE_ADDRESS_5, 0xffffffff}}) {
    const std::uint32_t address = read(c.offset, 4);
    write(c.offset, 4, 0xffffffff);
    EXPECT_EQ(read(c.offset, 4), c.mask) << std::hex << c.offset;
    write(c.offset, 4, address);  // what an OS does next: the old value back
    EXPECT_EQ(read(c.offset, 4), address) << std::hex << c.offset;
  }
  EXPECT_EQ(read(PCI_BASE_ADDRESS_0, 4), (kBar0 & 0xffffffff) | PCI_BASE_ADDRESS_MEM_TYPE_64);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_3, 4), kBar3 | PCI_BASE_ADDRESS_SPACE_IO);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_4, 4),
            kBar4 | PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
  // Sizing moves nothing, and the host's BARs never see the guest's values.
  EXPECT_EQ(position(journal, "slot"), journal.size());
  EXPECT_TRUE(config_writes().empty());
}

TEST_F(Passthrough, AMovedBarTakesItsSlotsAlong) {
  start();
  const std::uint32_t old_slot = vm.slots().containing(kBar4)->slot;
  write(PCI_BASE_ADDRESS_4, 4, 0xd000000c);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_4, 4), 0xd000000cu);
  EXPECT_EQ(vm.slots().containing(kBar4), nullptr);
  ASSERT_NE(vm.slots().containing(0xd0000000), nullptr);
  EXPECT_EQ(vm.slots().containing(0xd0000000)->slot, old_slot);  // the number is free again
  vm.guest_memory(0xd0000000 + 0x40, 1)[0] = 0x33;
  EXPECT_EQ(device.bar_memory(4)[0x40], 0x33);
  // The old place is no longer the device's; the new one is.
  std::array<std::uint8_t, 4> data{};
  EXPECT_FALSE(model->mmio({kBar4, 4, false}, data));
  EXPECT_NE(model->describe()[3].find("at 0xd0000000 (1 MiB mapped"), std::string::npos);
}

TEST_F(Passthrough, A64BitBarMovesAbove4GiBOneHalfAtATime) {
  start();
  write(PCI_BASE_ADDRESS_1, 4, 0x10);  // the high half first: 0x10_c0100000
  EXPECT_NE(vm.slots().containing(0x10c0100000), nullptr);
  write(PCI_BASE_ADDRESS_0, 4, 0x00200004);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_0, 4), 0x00200004u);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_1, 4), 0x10u);
  ASSERT_NE(vm.slots().containing(0x1000200000), nullptr);
  EXPECT_EQ(vm.slots().containing(0x10c0100000), nullptr);
  EXPECT_EQ(model->memory_slots(), 2u);
}

TEST_F(Passthrough, APlaceTheVmRefusesLeavesTheBarTrappedUntilItMovesAgain) {
  vm.refused.push_back({0xe0000000, 0xe1000000});
  start();
  decode(PCI_COMMAND_MEMORY);
  write(PCI_BASE_ADDRESS_4, 4, 0xe000000c);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_4, 4), 0xe000000cu);  // the guest sees its BAR where it put it
  EXPECT_EQ(model->memory_slots(), 0u + 1);             // BAR0's slot only
  EXPECT_NE(model->describe()[3].find("(0 B mapped into the guest, 1 MiB trapped)"),
            std::string::npos);
  // Its accesses trap and reach the device all the same.
  device.bar_memory(4)[0x100] = 0x42;
  EXPECT_EQ(mmio_read(0xe0000100, 1), 0x42u);
  mmio_write(0xe0000104, 4, 0xabcdef01);
  EXPECT_EQ(device.accesses.back(), (FakeDevice::Access{4, 0x104, 4, true, 0xabcdef01}));
  write(PCI_BASE_ADDRESS_4, 4, 0xd000000c);
  EXPECT_EQ(model->memory_slots(), 2u);
  EXPECT_NE(vm.slots().containing(0xd0000000), nullptr);
}

TEST_F(Passthrough, MovingOntoAnotherBarIsRefusedAndTrapped) {
  start();
  write(PCI_BASE_ADDRESS_0, 4, static_cast<std::uint32_t>(kBar4) | 4);  // over BAR4's slot
  EXPECT_EQ(model->memory_slots(), 1u);
  EXPECT_EQ(vm.slots().containing(kBar4)->size, 0x100000u);  // BAR4's, untouched
}

TEST_F(Passthrough, MovingABarOverAndOverReusesSlotNumbers) {
  FakeVm small(nullptr, 4);  // a VM that takes slot numbers 0..3 only
  msix::RouteTable small_routes(small);
  PassthroughDevice d(device, small, small_routes);
  for (int i = 0; i < 1000; ++i) {
    d.config_write(PCI_BASE_ADDRESS_4, 4, (i % 2 ? 0xe000000cu : 0xd000000cu));
  }
  EXPECT_EQ(d.memory_slots(), 2u);
  EXPECT_NE(small.slots().containing(0xe0000000), nullptr);
  EXPECT_LT(small.slots().containing(0xe0000000)->slot, 4u);
}

// KVM takes slot numbers below a limit; the VM hands out the lowest free one.
TEST(MemorySlots, FreeSlotNumbersAreUsedAgainAndStayBelowKvmsLimit) {
  kvm::MemorySlotTable slots(4);
  slots.add({0, 0, 0x100000, 0x7f0000000000, 0});  // guest RAM
  EXPECT_EQ(slots.free_slot(), 1u);
  // A BAR moved to and fro a thousand times: each move gives its number back first.
  for (std::uint64_t move = 0; move < 1000; ++move) {
    const std::uint32_t slot = slots.free_slot();
    ASSERT_EQ(slot, 1u) << "after " << move << " moves";
    slots.add({slot, 0xc0000000 + (move % 2) * 0x10000000, 0x4000, 0x7f0000200000, 0});
    slots.remove(slot);
  }
  slots.add({1, 0xc0000000, 0x1000, 0x7f0000200000, 0});
  slots.add({3, 0xc0001000, 0x1000, 0x7f0000201000, 0});
  EXPECT_EQ(slots.free_slot(), 2u);  // the lowest gap
  slots.add({2, 0xc0002000, 0x1000, 0x7f0000202000, 0});
  EXPECT_THROW((void)slots.free_slot(), Error);                                // all four in use
  EXPECT_THROW(slots.add({4, 0xc0003000, 0x1000, 0x7f0000203000, 0}), Error);  // KVM's limit
}

// ---- Partial widths ------------------------------------------------------------------------

TEST_F(Passthrough, NarrowConfigReadsPickTheirBytes) {
  start();
  EXPECT_EQ(read(0, 4), 0x00101b36u);
  EXPECT_EQ(read(0, 2), 0x1b36u);
  EXPECT_EQ(read(2, 2), 0x0010u);
  EXPECT_EQ(read(1, 1), 0x1bu);
  EXPECT_EQ(read(PCI_CLASS_DEVICE + 1, 1), 0x01u);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_4 + 3, 1), 0xc0u);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_4 + 2, 2), 0xc000u);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_0, 1), 0x04u);
}

TEST_F(Passthrough, NarrowBarWritesMergeIntoTheRegister) {
  start();
  write(PCI_BASE_ADDRESS_2 + 2, 2, 0xd000);  // the upper half only
  EXPECT_EQ(read(PCI_BASE_ADDRESS_2, 4), 0xd0004000u);
  write(PCI_BASE_ADDRESS_2 + 1, 1, 0x12);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_2, 4), 0xd0001200u);
  // Sizing by bytes: the register reads the mask only once all four bytes are ones.
  for (std::uint32_t i = 0; i < 4; ++i) write(PCI_BASE_ADDRESS_2 + i, 1, 0xff);
  EXPECT_EQ(read(PCI_BASE_ADDRESS_2, 4), 0xffffff00u);
}

TEST_F(Passthrough, AGuestConfigWriteReachesTheDeviceAsWideAsItCame) {
  start();
  write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  write(0x80, 4, 0x11223344);
  write(0x82, 2, 0x5566);
  write(0x81, 1, 0x77);
  // Less the bytes that are not the device's: the interrupt pin; MSI's control word.
  write(PCI_INTERRUPT_LINE, 4, 0xaabbcc0a);
  write(kMsi, 4, 0x00006005);
  EXPECT_EQ(config_writes(),
            (std::vector<FakeDevice::Access>{{kConfigIndex, PCI_COMMAND, 2, true, 0x6},
                                             {kConfigIndex, 0x80, 4, true, 0x11223344},
                                             {kConfigIndex, 0x82, 2, true, 0x5566},
                                             {kConfigIndex, 0x81, 1, true, 0x77},
                                             {kConfigIndex, PCI_INTERRUPT_LINE, 1, true, 0x0a},
                                             {kConfigIndex, PCI_MIN_GNT, 2, true, 0xaabb},
                                             {kConfigIndex, kMsi, 2, true, 0x6005}}));
}

TEST_F(Passthrough, MalformedConfigAccessesReadOnesAndWriteNothing) {
  start();
  EXPECT_EQ(read(2, 4), 0xffffffffu);      // crosses a dword
  EXPECT_EQ(read(0, 3), 0xffffffffu);      // no such width
  EXPECT_EQ(read(0xfe, 4), 0xffffffffu);   // past 256 and unaligned
  EXPECT_EQ(read(0x100, 4), 0xffffffffu);  // extended space: mechanism #1 cannot reach it
  write(0x80 + 3, 2, 0);
  write(0x100, 4, 0);
  write(0x80, 0, 0);
  EXPECT_TRUE(config_writes().empty());
}

TEST_F(Passthrough, TrappedAccessesKeepTheirWidthAndOffset) {
  start();
  decode(PCI_COMMAND_MEMORY);
  device.accesses.clear();
  mmio_write(kBar2 + 0x10, 1, 0x11);
  mmio_write(kBar2 + 0x12, 2, 0x2222);
  mmio_write(kBar2 + 0x14, 4, 0x44444444);
  mmio_write(kBar2 + 0x18, 8, 0x8888888888888888);
  EXPECT_EQ(device.accesses,
            (std::vector<FakeDevice::Access>{{2, 0x10, 1, true, 0x11},
                                             {2, 0x12, 2, true, 0x2222},
                                             {2, 0x14, 4, true, 0x44444444},
                                             {2, 0x18, 8, true, 0x8888888888888888}}));
  EXPECT_EQ(mmio_read(kBar2 + 0x10, 8), 0x4444444422220011u);
  EXPECT_EQ(mmio_read(kBar2 + 0x1c, 4), 0x88888888u);
  EXPECT_EQ(device.accesses.back(), (FakeDevice::Access{2, 0x1c, 4, false, 0x88888888}));
}

TEST_F(Passthrough, ThePageAfterASmallBarIsNotTheDevice) {
  start();
  decode(PCI_COMMAND_MEMORY);
  device.accesses.clear();
  EXPECT_EQ(mmio_read(kBar2 + 0xfc, 4), 0u);  // the last register
  std::array<std::uint8_t, 4> data{};
  EXPECT_FALSE(model->mmio({kBar2 + 0x100, 4, false}, data));  // the rest of its page
  // An access straddling the end reads ones and writes nothing.
  EXPECT_EQ(mmio_read(kBar2 + 0xfc, 8), 0xffffffffffffffffu);
  mmio_write(kBar2 + 0xfc, 8, 0);
  EXPECT_EQ(device.accesses.size(), 1u);
}

TEST_F(Passthrough, PortIoReachesTheIoBarOneItemAtATime) {
  start();
  decode(PCI_COMMAND_IO);
  device.accesses.clear();
  std::array<std::uint8_t, 6> data{1, 0, 2, 0, 3, 0};  // rep outsw, three words
  EXPECT_TRUE(model->io({static_cast<std::uint16_t>(kBar3 + 4), 2, true, 3, 0}, data));
  EXPECT_EQ(device.accesses, (std::vector<FakeDevice::Access>{
                                 {3, 4, 2, true, 1}, {3, 4, 2, true, 2}, {3, 4, 2, true, 3}}));
  std::array<std::uint8_t, 4> in{};
  EXPECT_TRUE(model->io({static_cast<std::uint16_t>(kBar3 + 4), 4, false, 1, 0}, in));
  EXPECT_EQ(little_endian(in), 3u);
  EXPECT_FALSE(model->io({static_cast<std::uint16_t>(kBar3 + 0x20), 1, false, 1, 0}, in));
}

// ---- The config overlay --------------------------------------------------------------------

TEST_F(Passthrough, TheOverlayPassesThroughVirtualizesAndHides) {
  start();
  // Passed through: IDs, class, status, capability pointers and headers, the MSI-X table and
  // PBA locations, the interrupt line, the device's own registers.
  EXPECT_EQ(read(PCI_VENDOR_ID, 4), 0x00101b36u);
  EXPECT_EQ(read(PCI_CLASS_REVISION, 4), 0x01080202u);
  EXPECT_EQ(read(PCI_STATUS, 2), PCI_STATUS_CAP_LIST);
  EXPECT_EQ(read(PCI_CAPABILITY_LIST, 1), kMsi);
  EXPECT_EQ(read(kMsi, 2), PCI_CAP_ID_MSI | kMsix << 8);
  EXPECT_EQ(read(kMsix + PCI_MSIX_TABLE, 4), 0x2000u);
  EXPECT_EQ(read(kMsix + PCI_MSIX_PBA, 4), 0x3000u);
  EXPECT_EQ(read(PCI_INTERRUPT_LINE, 1), 11u);
  EXPECT_EQ(read(0x80, 4), 0x12345678u);
  write(0x80, 4, 0xcafef00d);
  write(PCI_INTERRUPT_LINE, 1, 5);
  EXPECT_EQ(read(0x80, 4), 0xcafef00du);
  EXPECT_EQ(device.config()[0x80], 0x0d);
  EXPECT_EQ(device.config()[PCI_INTERRUPT_LINE], 5);
  // Virtual: the BARs are the guest's layout, not the host's; MSI and MSI-X control are the
  // guest's, with the read-only fields from the device.
  EXPECT_EQ(read(PCI_BASE_ADDRESS_2, 4), kBar2);
  EXPECT_EQ(read(kMsi + PCI_MSI_FLAGS, 2), PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | 2u << 1);
  EXPECT_EQ(read(kMsix + PCI_MSIX_FLAGS, 2), 7u);
  write(kMsi + PCI_MSI_ADDRESS_LO, 4, 0xfee01000);
  write(kMsi + PCI_MSI_MASK_64, 4, 0x5);
  EXPECT_EQ(read(kMsi + PCI_MSI_ADDRESS_LO, 4), 0xfee01000u);
  EXPECT_EQ(read(kMsi + PCI_MSI_MASK_64, 4), 0x5u);
  EXPECT_EQ(read(kMsi + PCI_MSI_PENDING_64, 4), 0u);
  msix_control(PCI_MSIX_FLAGS_MASKALL | 0x3ff);  // the table size is read-only
  EXPECT_EQ(read(kMsix + PCI_MSIX_FLAGS, 2), PCI_MSIX_FLAGS_MASKALL | 7u);
  // Hidden: no option ROM and no interrupt pin, whatever the device says.
  EXPECT_EQ(read(PCI_ROM_ADDRESS, 4), 0u);
  write(PCI_ROM_ADDRESS, 4, 0xffffffff);
  EXPECT_EQ(read(PCI_ROM_ADDRESS, 4), 0u);
  EXPECT_EQ(read(PCI_INTERRUPT_PIN, 1), 0u);
  EXPECT_EQ(read(PCI_INTERRUPT_LINE, 2), 5u);
  // Only the device's own bytes reached it.
  EXPECT_EQ(config_writes(),
            (std::vector<FakeDevice::Access>{{kConfigIndex, 0x80, 4, true, 0xcafef00d},
                                             {kConfigIndex, PCI_INTERRUPT_LINE, 1, true, 5}}));
}

TEST_F(Passthrough, TheBusReachesTheModelAtEveryWidth) {
  start();
  PciBus bus;
  bus.attach(1, 0, *model);
  auto select = [&](std::uint32_t reg) {
    std::uint32_t address = 0x80000000u | 1u << 11 | reg;
    bus.io(kConfigAddressPort, true, std::span(reinterpret_cast<std::uint8_t*>(&address), 4));
  };
  select(PCI_BASE_ADDRESS_2);
  std::array<std::uint8_t, 2> word{};
  bus.io(kConfigDataPort + 2, false, word);
  EXPECT_EQ(little_endian(word), 0xc010u);
  select(PCI_INTERRUPT_LINE);
  std::array<std::uint8_t, 1> pin{0xaa};
  bus.io(kConfigDataPort + 1, false, pin);
  EXPECT_EQ(pin[0], 0u);
}

// ---- MSI -----------------------------------------------------------------------------------

TEST_F(Passthrough, MsiEnableWiresEveryEnabledMessageWithItsData) {
  start();
  msi_message(0xfee01000, 0x4040);
  EXPECT_EQ(wired(kMsiIndex), 0u);  // nothing on the host until the guest enables
  write(kMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | 2 << 4);  // 4 messages
  EXPECT_EQ(wired(kMsiIndex), 4u);
  for (std::uint32_t v = 0; v < 4; ++v) {
    EXPECT_EQ(delivered(kMsiIndex, v), (msix::MsiMessage{0xfee01000, 0x4040 | v})) << v;
  }
  EXPECT_EQ(model->interrupts().wired_index(), kMsiIndex);
  write(kMsi + PCI_MSI_FLAGS, 2, 0);
  EXPECT_EQ(wired(kMsiIndex), 0u);
  EXPECT_TRUE(vm.irqfds.empty());
  EXPECT_EQ(routes.entries().size(), msix::default_irqchip_routes().size());
}

TEST_F(Passthrough, MsiRetargetsInPlace) {
  start();
  msi_message(0xfee00000, 0x30);
  write(kMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  const int fd = eventfd(kMsiIndex, 0);
  const std::size_t sets = device.irq_sets.size();
  msi_message(0xfee02000, 0x31);
  EXPECT_EQ(delivered(kMsiIndex, 0), (msix::MsiMessage{0xfee02000, 0x31}));
  EXPECT_EQ(eventfd(kMsiIndex, 0), fd);
  EXPECT_EQ(device.irq_sets.size(), sets);  // routes only: the device is not touched
}

TEST_F(Passthrough, MsiMultipleMessageEnableChangesTheWiredCount) {
  start();
  msi_message(0xfee00000, 0x50);
  write(kMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  EXPECT_EQ(wired(kMsiIndex), 1u);
  write(kMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | 1 << 4);
  EXPECT_EQ(wired(kMsiIndex), 2u);
  EXPECT_EQ(delivered(kMsiIndex, 1), (msix::MsiMessage{0xfee00000, 0x51}));
  // More than the device can: clamped to its 4.
  write(kMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | 5 << 4);
  EXPECT_EQ(wired(kMsiIndex), 4u);
}

TEST_F(Passthrough, AMaskedMsiVectorKeepsItsInterruptUntilUnmasked) {
  start();
  msi_message(0xfee00000, 0x60);
  write(kMsi + PCI_MSI_MASK_64, 4, 0x2);  // vector 1 masked before enable
  write(kMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | 1 << 4);
  EXPECT_TRUE(delivered(kMsiIndex, 0));
  EXPECT_FALSE(delivered(kMsiIndex, 1));
  EXPECT_EQ(read(kMsi + PCI_MSI_PENDING_64, 4), 0u);
  ASSERT_TRUE(device.fire(kMsiIndex, 1));
  EXPECT_TRUE(test::signalled(eventfd(kMsiIndex, 1)));  // held in the eventfd
  EXPECT_EQ(read(kMsi + PCI_MSI_PENDING_64, 4), 0x2u);  // and shown as pending
  write(kMsi + PCI_MSI_MASK_64, 4, 0x1);                // vector 1 unmasked, 0 masked
  EXPECT_EQ(read(kMsi + PCI_MSI_PENDING_64, 4), 0u);
  EXPECT_EQ(delivered(kMsiIndex, 1), (msix::MsiMessage{0xfee00000, 0x61}));
  EXPECT_TRUE(test::signalled(eventfd(kMsiIndex, 1)));  // KVM injects it on assignment
  EXPECT_FALSE(delivered(kMsiIndex, 0));
}

// ---- MSI-X ---------------------------------------------------------------------------------

TEST_F(Passthrough, MsixWiresOneMaskedVectorUntilTheGuestUnmasksIt) {
  start();
  decode(PCI_COMMAND_MEMORY);
  msix_control(PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(wired(kMsixIndex), 1u);
  EXPECT_FALSE(delivered(kMsixIndex, 0));  // the table comes out of reset masked
  msix_entry(0, 0xfee00000, 0x41, false);
  EXPECT_EQ(delivered(kMsixIndex, 0), (msix::MsiMessage{0xfee00000, 0x41}));
  msix_entry(0, 0xfee03000, 0x42, false);  // retargeted in place
  EXPECT_EQ(delivered(kMsixIndex, 0), (msix::MsiMessage{0xfee03000, 0x42}));
  msix_mask(0, true);
  EXPECT_FALSE(delivered(kMsixIndex, 0));
  EXPECT_EQ(wired(kMsixIndex), 1u);
}

TEST_F(Passthrough, MsixTableAccessesAtEveryWidthAndAlignment) {
  start();
  decode(PCI_COMMAND_MEMORY);
  device.accesses.clear();
  mmio_write(kTable + 16, 4, 0xfee00000);
  mmio_write(kTable + 20, 4, 0x1);
  mmio_write(kTable + 24, 8, 0x0000000100000077);  // data and vector control at once
  EXPECT_EQ(mmio_read(kTable + 16, 8), 0x1fee00000u);
  EXPECT_EQ(mmio_read(kTable + 24, 4), 0x77u);
  EXPECT_EQ(mmio_read(kTable + 28, 4), PCI_MSIX_ENTRY_CTRL_MASKBIT);
  EXPECT_EQ(mmio_read(kTable + 16 + 12, 4), PCI_MSIX_ENTRY_CTRL_MASKBIT);
  // Narrower than a dword, or not aligned to its width: reads zero, writes nothing.
  for (const std::uint32_t width : {1u, 2u}) {
    mmio_write(kTable + 16, width, 0xff);
    EXPECT_EQ(mmio_read(kTable + 16, width), 0u) << width;
  }
  mmio_write(kTable + 18, 4, 0xffffffff);
  mmio_write(kTable + 20, 8, 0xffffffffffffffff);
  EXPECT_EQ(mmio_read(kTable + 20, 8), 0u);
  EXPECT_EQ(mmio_read(kTable + 16, 8), 0x1fee00000u);
  // The last entry ends the table; an 8-byte access over its end is refused.
  mmio_write(kTable + 7 * 16 + 8, 4, 0x99);
  EXPECT_EQ(mmio_read(kTable + 7 * 16 + 8, 4), 0x99u);
  EXPECT_EQ(mmio_read(kTable + 7 * 16 + 12, 8), 0u);
  // None of it reached the device: the table is the VMM's.
  EXPECT_TRUE(device.accesses.empty());
  // Past the table, in its page, the bytes are the device's again.
  device.bar_memory(0)[0x2000 + 8 * 16] = 0x5c;
  EXPECT_EQ(mmio_read(kTable + 8 * 16, 1), 0x5cu);
  EXPECT_EQ(device.accesses.back(), (FakeDevice::Access{0, 0x2080, 1, false, 0x5c}));
}

TEST_F(Passthrough, ThePbaShowsAMaskedVectorThatFiredAndUnmaskingDeliversIt) {
  start();
  decode(PCI_COMMAND_MEMORY);
  msix_entry(0, 0xfee00000, 0x41, false);
  msix_entry(1, 0xfee00000, 0x42, false);
  msix_control(PCI_MSIX_FLAGS_ENABLE);
  msix_mask(1, true);
  EXPECT_EQ(mmio_read(kPba, 8), 0u);
  ASSERT_TRUE(device.fire(kMsixIndex, 1));
  EXPECT_EQ(mmio_read(kPba, 8), 0x2u);
  EXPECT_EQ(mmio_read(kPba, 1), 0x2u);
  mmio_write(kPba, 8, 0);  // read-only
  EXPECT_EQ(mmio_read(kPba, 4), 0x2u);
  ASSERT_TRUE(device.fire(kMsixIndex, 0));  // unmasked: KVM takes it, nothing pends
  msix_mask(1, false);
  EXPECT_EQ(delivered(kMsixIndex, 1), (msix::MsiMessage{0xfee00000, 0x42}));
  EXPECT_TRUE(test::signalled(eventfd(kMsixIndex, 1)));  // KVM injects it on assignment
  EXPECT_EQ(mmio_read(kPba, 8), 0u);
}

TEST_F(Passthrough, TheFunctionMaskMasksEveryVectorAndKeepsTheTable) {
  start();
  decode(PCI_COMMAND_MEMORY);
  msix_entry(0, 0xfee00000, 0x41, false);
  msix_entry(1, 0xfee00000, 0x42, false);
  msix_entry(2, 0xfee00000, 0x43, true);
  msix_control(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  EXPECT_EQ(wired(kMsixIndex), 2u);
  EXPECT_TRUE(vm.irqfds.empty());
  ASSERT_TRUE(device.fire(kMsixIndex, 1));
  EXPECT_EQ(mmio_read(kPba, 1), 0x2u);
  msix_control(PCI_MSIX_FLAGS_ENABLE);
  EXPECT_TRUE(delivered(kMsixIndex, 0));
  EXPECT_TRUE(delivered(kMsixIndex, 1));
  EXPECT_EQ(vm.irqfds.size(), 2u);
  EXPECT_EQ(mmio_read(kTable + 16 + 12, 4), 0u);  // the entries' own masks are untouched
}

TEST_F(Passthrough, UnmaskingAHigherVectorGrowsTheWiredSet) {
  start();
  decode(PCI_COMMAND_MEMORY);
  msix_entry(0, 0xfee00000, 0x41, false);
  msix_control(PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(wired(kMsixIndex), 1u);
  msix_entry(5, 0xfee00000, 0x46, false);
  EXPECT_EQ(wired(kMsixIndex), 6u);
  EXPECT_TRUE(delivered(kMsixIndex, 0));
  EXPECT_EQ(delivered(kMsixIndex, 5), (msix::MsiMessage{0xfee00000, 0x46}));
  for (std::uint32_t v = 1; v < 5; ++v) EXPECT_FALSE(delivered(kMsixIndex, v)) << v;
  // Masking it again keeps the set; the last vector of the table grows it to all eight.
  msix_mask(5, true);
  EXPECT_EQ(wired(kMsixIndex), 6u);
  msix_entry(7, 0xfee00000, 0x48, false);
  EXPECT_EQ(wired(kMsixIndex), 8u);
}

TEST_F(Passthrough, MsixWinsOverMsiAndMsiComesBackWhenItGoes) {
  start();
  decode(PCI_COMMAND_MEMORY);
  msi_message(0xfee00000, 0x30);
  write(kMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  EXPECT_EQ(wired(kMsiIndex), 1u);
  msix_entry(0, 0xfee00000, 0x41, false);
  msix_control(PCI_MSIX_FLAGS_ENABLE);  // the fake refuses MSI-X while MSI is on, as vfio-pci
  EXPECT_EQ(wired(kMsiIndex), 0u);
  EXPECT_EQ(wired(kMsixIndex), 1u);
  EXPECT_EQ(model->interrupts().wired_index(), kMsixIndex);
  // MSI written while MSI-X is on changes nothing on the host.
  write(kMsi + PCI_MSI_FLAGS, 2, 0);
  write(kMsi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  EXPECT_EQ(wired(kMsiIndex), 0u);
  EXPECT_EQ(wired(kMsixIndex), 1u);
  msix_control(0);
  EXPECT_EQ(wired(kMsixIndex), 0u);
  EXPECT_EQ(delivered(kMsiIndex, 0), (msix::MsiMessage{0xfee00000, 0x30}));
  msix_control(PCI_MSIX_FLAGS_ENABLE);
  write(kMsi + PCI_MSI_FLAGS, 2, 0);
  msix_control(0);
  EXPECT_FALSE(model->interrupts().wired_index());
  EXPECT_TRUE(vm.irqfds.empty());
}

// ---- Memory Space and I/O Space ------------------------------------------------------------

TEST_F(Passthrough, WithMemorySpaceOffTrappedAccessesFloatHighAndWriteNothing) {
  start();
  ASSERT_EQ(read(PCI_COMMAND, 2), 0u);
  device.bar_memory(2)[0] = 0x12;
  EXPECT_EQ(mmio_read(kBar2, 4), 0xffffffffu);
  mmio_write(kBar2, 4, 0);
  EXPECT_EQ(mmio_read(kTable + 12, 4), 0xffffffffu);
  mmio_write(kTable + 12, 4, 0);  // would unmask vector 0
  EXPECT_TRUE(device.accesses.empty());
  decode(PCI_COMMAND_MEMORY);
  EXPECT_EQ(mmio_read(kBar2, 4), 0x12u);
  EXPECT_EQ(mmio_read(kTable + 12, 4), PCI_MSIX_ENTRY_CTRL_MASKBIT);
  decode(PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
  write(PCI_COMMAND, 1, PCI_COMMAND_IO);  // a byte write reaches the bit too
  EXPECT_EQ(mmio_read(kBar2, 4), 0xffffffffu);
}

TEST_F(Passthrough, WithIoSpaceOffPortsFloatHigh) {
  start();
  decode(PCI_COMMAND_MEMORY);
  std::array<std::uint8_t, 2> data{};
  EXPECT_TRUE(model->io({static_cast<std::uint16_t>(kBar3), 2, false, 1, 0}, data));
  EXPECT_EQ(little_endian(data), 0xffffu);
  EXPECT_TRUE(model->io({static_cast<std::uint16_t>(kBar3), 2, true, 1, 0}, data));
  EXPECT_TRUE(std::none_of(device.accesses.begin(), device.accesses.end(),
                           [](const FakeDevice::Access& a) { return a.region == 3; }));
}

// ---- Teardown ------------------------------------------------------------------------------

TEST_F(Passthrough, TeardownUnwiresThenStopsDmaThenRemovesTheSlots) {
  start();
  decode(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  msix_entry(0, 0xfee00000, 0x41, false);
  msix_control(PCI_MSIX_FLAGS_ENABLE);
  journal.clear();
  model.reset();
  const std::size_t irqfd_off = position(journal, "irqfd gsi", true);
  const std::size_t vectors_off = position(journal, "SET_IRQS MSI-X off", true);
  const std::size_t master_off = position(journal, "config write 0x4/2");
  const std::size_t first_slot_gone = position(journal, "slot");
  ASSERT_LT(master_off, journal.size()) << "bus mastering was left on";
  EXPECT_LT(irqfd_off, vectors_off);
  EXPECT_LT(vectors_off, master_off);
  EXPECT_LT(master_off, first_slot_gone);
  EXPECT_EQ(journal[master_off], "config write 0x4/2 0x2");  // Memory Space stays on
  EXPECT_EQ(std::count_if(journal.begin(), journal.end(),
                          [](const std::string& s) { return s.find("removed") != s.npos; }),
            2);
  EXPECT_EQ(vm.slots().size(), 0u);
  EXPECT_TRUE(vm.irqfds.empty());
  EXPECT_EQ(wired(kMsixIndex), 0u);
}

}  // namespace
}  // namespace vfiokit::vmm
