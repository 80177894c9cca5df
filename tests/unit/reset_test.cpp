#include "vfiokit/pci/reset.h"

#include <gtest/gtest.h>

#include "tests/unit/config_builder.h"
#include "tests/unit/fixtures.h"

namespace vfiokit::pci {
namespace {

Bdf bdf(const char* text) { return *parse_bdf(text); }

// An endpoint with the facts assess_reset reads, as parse_config_facts would leave them.
PciDevice endpoint() {
  PciDevice dev;
  dev.bdf = bdf("0000:0a:00.0");
  dev.config.size = kExtendedConfigSize;
  dev.config.header = ConfigHeader{};
  return dev;
}

ResetTopology behind_a_bridge(std::vector<BusNeighbour> neighbours = {}) {
  ResetTopology topology;
  topology.parent_bridge = bdf("0000:00:03.1");
  topology.neighbours = std::move(neighbours);
  return topology;
}

using Methods = std::vector<std::string>;

TEST(AdvancedFeatures, ParsesTransactionsPendingAndFlr) {
  test::ConfigBuilder config(256);
  config.endpoint(0x8086, 0x1234, 0x40).cap(0x40, PCI_CAP_ID_AF, 0).u8(0x42, 6).u8(0x43, 0x03);
  const auto facts = parse_config_facts(config.bytes());
  ASSERT_TRUE(facts.advanced_features.has_value()) << facts.error;
  EXPECT_EQ(facts.advanced_features->offset, 0x40);
  EXPECT_TRUE(facts.advanced_features->transactions_pending);
  EXPECT_TRUE(facts.advanced_features->function_level_reset);
  config.u8(0x43, PCI_AF_CAP_FLR);  // FLR without TP: the kernel does not use it
  const auto no_tp = parse_config_facts(config.bytes());
  EXPECT_FALSE(no_tp.advanced_features->transactions_pending);
  PciDevice dev = endpoint();
  dev.config = no_tp;
  EXPECT_FALSE(assess_reset(dev, {}).af_flr);
  dev.config = facts;
  EXPECT_EQ(assess_reset(dev, {}).methods(), Methods{"af_flr"});
}

TEST(ResetSupport, InfersFromConfigSpaceAndTheTreeWhenTheKernelDoesNotList) {
  PciDevice dev = endpoint();
  dev.config.pcie = PcieCapability{0x60, 2, 0, true};
  dev.config.power_management = PowerManagementCapability{0x40, false};
  ResetSupport reset = assess_reset(dev, behind_a_bridge());
  EXPECT_EQ(reset.methods(), (Methods{"flr", "pm", "bus"}));
  EXPECT_TRUE(reset.function_level());

  dev.config.pcie->function_level_reset = false;
  dev.config.power_management->no_soft_reset = true;  // D3hot -> D0 keeps its state
  reset = assess_reset(dev, behind_a_bridge());
  EXPECT_EQ(reset.methods(), Methods{"bus"});
  EXPECT_FALSE(reset.function_level());

  reset = assess_reset(dev, ResetTopology{});  // on a root bus: no bridge to reset it
  EXPECT_TRUE(reset.methods().empty());
  EXPECT_FALSE(reset.function_level());
}

TEST(ResetSupport, TheKernelsListIsAuthoritative) {
  PciDevice dev = endpoint();
  dev.config.pcie = PcieCapability{0x60, 2, 0, true};  // FLR advertised, but quirked off
  dev.reset_methods = {"bus"};
  const ResetSupport reset = assess_reset(dev, behind_a_bridge());
  EXPECT_TRUE(reset.flr);
  EXPECT_EQ(reset.methods(), Methods{"bus"});
  EXPECT_FALSE(reset.function_level());
}

TEST(ResetSupport, ABusOrSlotResetNamesWhatElseItResets) {
  PciDevice dev = endpoint();
  const BusNeighbour audio{bdf("0000:0a:00.1"), 0x040300, 4, "snd_hda_intel"};
  ResetSupport reset = assess_reset(dev, behind_a_bridge({audio}));
  ASSERT_EQ(reset.also_reset.size(), 1u);
  EXPECT_EQ(reset.also_reset[0].bdf, audio.bdf);
  EXPECT_TRUE(audio.same_slot(dev.bdf));

  ResetTopology slot_only;
  slot_only.hotplug_slot = "1";
  slot_only.neighbours = {audio};
  reset = assess_reset(dev, slot_only);
  EXPECT_TRUE(reset.slot);
  EXPECT_FALSE(reset.bus);
  EXPECT_EQ(reset.methods(), Methods{"bus"});  // the kernel's name for both
  EXPECT_EQ(reset.also_reset.size(), 1u);

  dev.config.header->header_type = 1;  // a bridge: its bus reset resets what is behind it
  reset = assess_reset(dev, behind_a_bridge({audio}));
  EXPECT_FALSE(reset.bus);
  EXPECT_TRUE(reset.also_reset.empty());
}

TEST(ResetSupport, HeaderOnlyMeansUnknownNotAbsent) {
  PciDevice dev = endpoint();
  dev.config.header_only = true;
  EXPECT_FALSE(assess_reset(dev, {}).capabilities_known);
  EXPECT_TRUE(assess_reset(endpoint(), {}).capabilities_known);
}

TEST(ResetTopology, ReadsTheBridgeTheNeighboursAndTheHotplugSlot) {
  const HostPaths paths = test::fixture_sysfs("gpu-in-use");
  const ResetTopology gpu = read_reset_topology(paths, bdf("0000:0a:00.0"));
  EXPECT_EQ(gpu.parent_bridge, bdf("0000:00:03.1"));
  ASSERT_EQ(gpu.neighbours.size(), 1u);
  EXPECT_EQ(gpu.neighbours[0].bdf, bdf("0000:0a:00.1"));
  EXPECT_EQ(gpu.neighbours[0].class_code, 0x040300u);
  EXPECT_EQ(gpu.neighbours[0].iommu_group, 4u);
  EXPECT_EQ(gpu.neighbours[0].driver, "snd_hda_intel");
  EXPECT_EQ(gpu.hotplug_slot, "1");  // slot 2 has no power control

  const ResetTopology port = read_reset_topology(paths, bdf("0000:00:03.1"));
  EXPECT_FALSE(port.parent_bridge.has_value());  // on the root bus
  EXPECT_TRUE(port.neighbours.empty());
  EXPECT_FALSE(port.hotplug_slot.has_value());

  const ResetTopology missing = read_reset_topology(paths, bdf("0000:0f:00.0"));
  EXPECT_FALSE(missing.parent_bridge.has_value());
}

TEST(ResetTopology, GpuAndAudioBehindTheirRootPort) {
  const HostPaths paths = test::fixture_sysfs("gpu-audio-group");
  const PciDevice gpu = read_pci_device(paths, bdf("0000:01:00.0"));
  const ResetSupport reset = assess_reset(gpu, read_reset_topology(paths, gpu.bdf));
  EXPECT_EQ(reset.methods(), Methods{"bus"});
  ASSERT_EQ(reset.also_reset.size(), 1u);
  EXPECT_EQ(reset.also_reset[0].bdf, bdf("0000:01:00.1"));
  EXPECT_EQ(reset.also_reset[0].iommu_group, 1u);
}

}  // namespace
}  // namespace vfiokit::pci
