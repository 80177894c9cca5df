#include <gtest/gtest.h>
#include <linux/vfio.h>

#include "tests/unit/config_builder.h"
#include "tests/unit/fake_device.h"
#include "vfiokit/base/error.h"
#include "vfiokit/msix/msi.h"
#include "vfiokit/msix/routing.h"
#include "vfiokit/msix/vectors.h"
#include "vfiokit/msix/wiring.h"

namespace vfiokit::msix {
namespace {

TEST(Msi, EncodesTheFieldsWhereTheSdmPutsThem) {
  const MsiMessage m = encode_msi({3, 0x31, DeliveryMode::fixed, false, false, false, false});
  EXPECT_EQ(m.address, 0xfee03000u);
  EXPECT_EQ(m.data, 0x31u);
  const MsiMessage level =
      encode_msi({0xff, 0xef, DeliveryMode::lowest_priority, true, true, true, true});
  EXPECT_EQ(level.address, 0xfeeff00cu);
  EXPECT_EQ(level.data, 0xc1efu);
  EXPECT_EQ(encode_msi({0, 2, DeliveryMode::nmi}).data, 0x402u);  // NMI ignores the vector
}

TEST(Msi, RoundTripsEveryVectorDestinationAndMode) {
  for (unsigned vector = 16; vector < 256; ++vector) {
    for (unsigned dest : {0u, 1u, 7u, 255u}) {
      for (DeliveryMode mode :
           {DeliveryMode::fixed, DeliveryMode::lowest_priority, DeliveryMode::nmi}) {
        for (bool level : {false, true}) {
          const MsiFields fields{static_cast<std::uint8_t>(dest),
                                 static_cast<std::uint8_t>(vector),
                                 mode,
                                 dest == 7,
                                 dest == 255,
                                 level,
                                 level};
          ASSERT_EQ(decode_msi(encode_msi(fields)), fields) << describe(fields);
        }
      }
    }
  }
}

TEST(Msi, RejectsReservedAndForeignMessages) {
  EXPECT_THROW(encode_msi({0, 15}), Error);  // an exception vector
  EXPECT_THROW(encode_msi({0, 0x30, static_cast<DeliveryMode>(3)}), Error);
  EXPECT_THROW(decode_msi({0xfed00000, 0x30}), Error);     // not the MSI window
  EXPECT_THROW(decode_msi({0xfee00001, 0x30}), Error);     // reserved address bits
  EXPECT_THROW(decode_msi({0xfee00000, 0x10030}), Error);  // reserved data bits
  EXPECT_THROW(decode_msi({0xfee00000, 0x630}), Error);    // reserved mode 6
  EXPECT_EQ(describe(decode_msi({0xfee01000, 0x8031})), "vector 0x31 to APIC 1, fixed, level");
  // Found by fuzz/msi.cpp: these decoded, and encoding the result lost or refused something.
  EXPECT_THROW(decode_msi({0xfee00010, 0x30}), Error);    // bit 4: the remappable format
  EXPECT_THROW(decode_msi({0xfee00fe0, 0x30}), Error);    // bits 11:5: an extended destination
  EXPECT_THROW(decode_msi({0xfee00000, 0x0830}), Error);  // data bit 11
  EXPECT_THROW(decode_msi({0xfee00000, 0x000f}), Error);  // fixed delivery of exception 15
  EXPECT_THROW(decode_msi({0xfee00000, 0x0100}), Error);  // lowest priority, vector 0
  EXPECT_NO_THROW(decode_msi({0xfee00000, 0x0402}));      // NMI ignores the vector
}

// Whatever the decoder accepts must be exactly what encoding its fields gives back: every data
// word with the plain address, and every low address bit with a plain data word.
TEST(Msi, EveryMessageThatDecodesEncodesBackUnchanged) {
  int decoded = 0;
  auto check = [&](const MsiMessage& m) {
    MsiFields fields;
    try {
      fields = decode_msi(m);
    } catch (const Error&) {
      return;
    }
    ++decoded;
    ASSERT_EQ(encode_msi(fields), m) << std::hex << m.address << " " << m.data;
  };
  for (std::uint32_t data = 0; data <= 0xffff; ++data) check({0xfee00000, data});
  for (std::uint64_t low = 0; low <= 0xfff; ++low) check({0xfee5a000 | low, 0x4030});
  EXPECT_GT(decoded, 0x1000);
}

TEST(GsiAllocator, HandsOutFromTwentyFourAndRunsOutAt4096) {
  GsiAllocator gsis;
  EXPECT_EQ(gsis.available(), 4096u - 24);
  const auto first = gsis.allocate(3);
  EXPECT_EQ(first, (std::vector<std::uint32_t>{24, 25, 26}));
  const auto rest = gsis.allocate(gsis.available());
  EXPECT_EQ(rest.back(), 4095u);
  EXPECT_EQ(gsis.available(), 0u);
  try {
    gsis.allocate(1);
    FAIL() << "exhausted";
  } catch (const Error& e) {
    EXPECT_NE(e.hint().find("4096"), std::string::npos);
  }
  const std::vector<std::uint32_t> back = {25};
  gsis.release(back);
  EXPECT_EQ(gsis.allocate(1), back);
  EXPECT_THROW(gsis.release(std::vector<std::uint32_t>{5}), Error);  // an irqchip GSI
  EXPECT_THROW(gsis.release(std::vector<std::uint32_t>{9999}), Error);
}

TEST(GsiAllocator, AFailedRequestAllocatesNothing) {
  GsiAllocator gsis(24, 34);
  gsis.allocate(8);
  EXPECT_THROW(gsis.allocate(3), Error);
  EXPECT_EQ(gsis.available(), 2u);
}

// Found by fuzz/gsi_allocator.cpp: a list with a bad GSI after good ones released the good ones,
// then threw, leaving the caller unsure of what it still held.
TEST(GsiAllocator, AFailedReleaseReleasesNothing) {
  GsiAllocator gsis(24, 34);
  const auto held = gsis.allocate(3);
  EXPECT_THROW(gsis.release(std::vector<std::uint32_t>{held[0], held[1], 33}), Error);
  EXPECT_EQ(gsis.available(), 7u);
  EXPECT_THROW(gsis.release(std::vector<std::uint32_t>{held[2], held[2]}), Error);  // twice
  EXPECT_EQ(gsis.available(), 7u);
  gsis.release(held);
  EXPECT_EQ(gsis.available(), 10u);
}

// Records what a VM would be asked to do.
class RecordingSink final : public IrqRouting {
 public:
  void set_gsi_routing(std::span<const RouteEntry> entries) override {
    tables.emplace_back(entries.begin(), entries.end());
  }
  void assign_irqfd(int fd, std::uint32_t gsi) override { irqfds.push_back({fd, gsi}); }
  void deassign_irqfd(int fd, std::uint32_t gsi) override {
    std::erase(irqfds, std::pair<int, std::uint32_t>{fd, gsi});
  }
  void signal_msi(const MsiMessage& m) override { signalled.push_back(m); }
  std::vector<std::vector<RouteEntry>> tables;
  std::vector<std::pair<int, std::uint32_t>> irqfds;
  std::vector<MsiMessage> signalled;
};

TEST(RouteTable, DefaultIrqchipRoutesMirrorKvms) {
  const auto routes = default_irqchip_routes();
  EXPECT_EQ(routes.size(), 40u);  // 16 GSIs on IOAPIC and PIC, 8 on the IOAPIC only
  EXPECT_EQ(routes[0], (RouteEntry{0, IrqchipPin{2, 0}}));
  EXPECT_EQ(routes[1], (RouteEntry{0, IrqchipPin{0, 0}}));
  EXPECT_EQ(routes[19], (RouteEntry{9, IrqchipPin{1, 1}}));
  EXPECT_EQ(routes.back(), (RouteEntry{23, IrqchipPin{2, 23}}));
}

TEST(RouteTable, AWholeChangeSetIsOneCommit) {
  RecordingSink vm;
  RouteTable table(vm);
  const auto gsis = table.gsis().allocate(512);
  for (std::uint32_t i = 0; i < gsis.size(); ++i) {
    table.stage(gsis[i], encode_msi({0, static_cast<std::uint8_t>(0x30 + i % 200)}));
  }
  EXPECT_TRUE(vm.tables.empty());  // nothing reaches KVM before the commit
  table.commit();
  ASSERT_EQ(vm.tables.size(), 1u);
  EXPECT_EQ(vm.tables[0].size(), 40u + 512);
  EXPECT_EQ(table.commits(), 1u);
  table.commit();  // unchanged: no second ioctl
  EXPECT_EQ(vm.tables.size(), 1u);
  table.stage(gsis[0], encode_msi({0, 0x30}));  // the same message again: still clean
  EXPECT_FALSE(table.dirty());
  table.stage(gsis[0], encode_msi({1, 0x30}));
  table.unstage(gsis[1]);
  table.commit();
  ASSERT_EQ(vm.tables.size(), 2u);
  EXPECT_EQ(vm.tables[1].size(), 40u + 511);
  EXPECT_EQ(table.route(gsis[0]), encode_msi({1, 0x30}));
  EXPECT_FALSE(table.route(gsis[1]));
}

// arm64's ITS finds an MSI by the requester ID it carries; a table without the irqchip pins (an
// arm64 VM has none) passes it through to the VM as staged, and a change of device ID alone is a
// change to commit.
TEST(RouteTable, AMessagesDeviceIdReachesTheVmAndChangingItIsAChange) {
  RecordingSink vm;
  RouteTable table(vm, /*keep_irqchip_routes=*/false);
  const auto gsi = table.gsis().allocate(1).front();
  const MsiMessage its_event{0x08090040, 7, 0x08};
  table.stage(gsi, its_event);
  table.commit();
  ASSERT_EQ(vm.tables.size(), 1u);
  ASSERT_EQ(vm.tables[0].size(), 1u);
  EXPECT_EQ(std::get<MsiMessage>(vm.tables[0][0].target).device_id, 0x08u);
  table.stage(gsi, MsiMessage{0x08090040, 7, 0x09});
  EXPECT_TRUE(table.dirty());
  table.stage(gsi, MsiMessage{0x08090040, 7});
  EXPECT_NE(table.route(gsi), its_event) << "no device ID is not device ID 8";
  EXPECT_FALSE(MsiMessage(0xfee00000, 0x30).device_id);
}

TEST(RouteTable, IrqchipGsisAndOutOfRangeGsisAreRefused) {
  RecordingSink vm;
  RouteTable table(vm);
  EXPECT_THROW(table.stage(5, encode_msi({0, 0x30})), Error);
  EXPECT_THROW(table.stage(4096, encode_msi({0, 0x30})), Error);
  RouteTable bare(vm, false);  // no irqchip: every GSI is free for MSI
  bare.stage(5, encode_msi({0, 0x30}));
  bare.commit();
  EXPECT_EQ(vm.tables.back().size(), 1u);
}

// ---- Vectors and wiring on a fake device ----------------------------------------------------

TEST(InterruptVectors, GrowingWithoutResizeReenablesWithTheSameEventfds) {
  // Linux before 6.5 (Debian 12's 6.1) takes no MSI-X vector past the ones enabled.
  test::FakeDevice device(test::ConfigBuilder(256).bytes());
  device.add_irq(VFIO_PCI_MSIX_IRQ_INDEX, 8, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
  InterruptVectors vectors(device, VFIO_PCI_MSIX_IRQ_INDEX);
  vectors.enable(2);
  const int first = vectors.eventfd(0);
  vectors.grow(5);
  ASSERT_EQ(device.irq_sets.size(), 3u);
  EXPECT_EQ(device.irq_sets[1].count, 0u);  // off...
  EXPECT_EQ(device.irq_sets[2].start, 0u);  // ...and on again with all five
  EXPECT_EQ(device.irq_sets[2].count, 5u);
  EXPECT_EQ(device.irq_sets[2].eventfds[0], first);
  EXPECT_EQ(vectors.eventfd(0), first);
  EXPECT_THROW(vectors.grow(9), Error);  // the device has 8
  ASSERT_TRUE(device.fire(VFIO_PCI_MSIX_IRQ_INDEX, 4));
  EXPECT_TRUE(vectors.wait_for(4, std::chrono::milliseconds(0)));
  vectors.disable();
  EXPECT_EQ(device.eventfds(VFIO_PCI_MSIX_IRQ_INDEX), std::vector<int>(8, -1));
}

TEST(InterruptVectors, GrowingWhereTheKernelResizesAddsOnlyTheNewVectors) {
  test::FakeDevice device(test::ConfigBuilder(256).bytes());
  device.add_irq(VFIO_PCI_MSIX_IRQ_INDEX, 8, VFIO_IRQ_INFO_EVENTFD);
  InterruptVectors vectors(device, VFIO_PCI_MSIX_IRQ_INDEX);
  vectors.enable(2);
  vectors.grow(5);
  ASSERT_EQ(device.irq_sets.size(), 2u);
  EXPECT_EQ(device.irq_sets[1].start, 2u);
  EXPECT_EQ(device.irq_sets[1].count, 3u);
  EXPECT_EQ(vectors.count(), 5u);
}

TEST(MsixWiring, MaskingDetachesTheIrqfdAndTheInterruptWaitsInTheEventfd) {
  test::Journal journal;
  test::FakeDevice device(test::ConfigBuilder(256).bytes(), &journal);
  device.add_irq(VFIO_PCI_MSIX_IRQ_INDEX, 4, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
  test::FakeVm vm(&journal);
  RouteTable routes(vm);
  {
    MsixWiring wiring(device, VFIO_PCI_MSIX_IRQ_INDEX, routes);
    wiring.wire({encode_msi({0, 0x30}), encode_msi({0, 0x31})}, {false, true});
    EXPECT_EQ(vm.routing_commits, 1u);  // both routes in one KVM_SET_GSI_ROUTING
    EXPECT_EQ(vm.delivers(wiring.vectors().eventfd(0)), encode_msi({0, 0x30}));
    EXPECT_FALSE(vm.delivers(wiring.vectors().eventfd(1)));
    ASSERT_TRUE(device.fire(VFIO_PCI_MSIX_IRQ_INDEX, 1));
    EXPECT_TRUE(wiring.pending(1));
    EXPECT_FALSE(wiring.pending(0));
    wiring.unmask(1);
    EXPECT_EQ(vm.delivers(wiring.vectors().eventfd(1)), encode_msi({0, 0x31}));
    EXPECT_FALSE(wiring.pending(1));  // an assigned irqfd is KVM's to drain
    wiring.retarget(1, encode_msi({1, 0x32}));
    EXPECT_EQ(vm.delivers(wiring.vectors().eventfd(1)), encode_msi({1, 0x32}));
    journal.clear();
  }
  // Teardown: irqfds first, then the device's vectors, then the routes.
  ASSERT_EQ(journal.size(), 4u);
  EXPECT_EQ(journal[0].rfind("irqfd", 0), 0u);
  EXPECT_EQ(journal[1].rfind("irqfd", 0), 0u);
  EXPECT_EQ(journal[2], "SET_IRQS MSI-X off");
  EXPECT_EQ(journal[3].rfind("routing", 0), 0u);
  EXPECT_TRUE(vm.irqfds.empty());
  EXPECT_EQ(routes.gsis().available(), kMaxRoutes - kFirstMsiGsi);
}

// Found by fuzz/route_table.cpp: with the irqchip's 40 routes kept, all 4072 MSI GSIs could be
// staged, and KVM_SET_GSI_ROUTING refuses a table of more than KVM_MAX_IRQ_ROUTES (4096) entries.
TEST(RouteTable, NeverHoldsMoreRoutesThanKvmAccepts) {
  RecordingSink vm;
  RouteTable table(vm);
  const MsiMessage message = encode_msi({0, 0x30});
  const std::uint32_t room = kMaxRoutes - 40;
  for (std::uint32_t gsi = kFirstMsiGsi; gsi < kFirstMsiGsi + room; ++gsi) {
    table.stage(gsi, message);
  }
  EXPECT_THROW(table.stage(kFirstMsiGsi + room, message), Error);
  table.stage(kFirstMsiGsi, encode_msi({1, 0x31}));  // changing a route still works
  table.commit();
  EXPECT_EQ(vm.tables.back().size(), kMaxRoutes);
  table.unstage(kFirstMsiGsi);
  table.stage(kFirstMsiGsi + room, message);  // room again
  RouteTable bare(vm, false);
  for (std::uint32_t gsi = 0; gsi < kMaxRoutes; ++gsi) bare.stage(gsi, message);
  bare.commit();
  EXPECT_EQ(vm.tables.back().size(), kMaxRoutes);
}

}  // namespace
}  // namespace vfiokit::msix
