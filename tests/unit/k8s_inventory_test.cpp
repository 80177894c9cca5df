// Which groups the device plugin's resources select (k8s/inventory.h), from values, and how
// healthy they are, from values and from fixture trees changed under the plugin's feet.
#include "vfiokit/k8s/inventory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "tests/unit/fake_kernel.h"
#include "tests/unit/fixtures.h"
#include "vfiokit/k8s/config.h"

namespace vfiokit::k8s {
namespace {

namespace fs = std::filesystem;

pci::Bdf bdf(const char* text) { return *pci::parse_bdf(text); }

// A function as sysfs would show it; `bridge` makes it a PCI-to-PCI bridge (class 06:04).
pci::PciDevice function(const char* address, std::uint16_t vendor, std::uint16_t device,
                        std::uint32_t class_code, std::optional<unsigned> group,
                        const char* driver = nullptr, int numa_node = -1) {
  pci::PciDevice d;
  d.bdf = bdf(address);
  d.vendor_id = vendor;
  d.device_id = device;
  d.class_code = class_code;
  d.iommu_group = group;
  if (driver) d.driver = driver;
  d.numa_node = numa_node;
  return d;
}

// A host as the tests below see it: two NVMe controllers on two NUMA nodes, a GPU with its HDMI
// audio behind a root port (one group), an e1000e, a SATA controller in the chipset's group with
// the LPC bridge, and an NVMe controller on a host without an IOMMU group.
std::vector<pci::PciDevice> host() {
  return {
      function("0000:00:00.0", 0x8086, 0x29c0, 0x060000, 0),
      function("0000:00:01.0", 0x8086, 0x1901, 0x060400, 1, "pcieport"),
      function("0000:01:00.1", 0x10de, 0x10f0, 0x040300, 1, "snd_hda_intel", 0),
      function("0000:01:00.0", 0x10de, 0x1b80, 0x030000, 1, "nouveau", 0),
      function("0000:02:00.0", 0x1b36, 0x0010, 0x010802, 2, "nvme", 0),
      function("0000:81:00.0", 0x1b36, 0x0010, 0x010802, 8, "nvme", 1),
      function("0000:00:03.0", 0x8086, 0x10d3, 0x020000, 3, "e1000e"),
      function("0000:00:1f.0", 0x8086, 0x2918, 0x060100, 4, "lpc_ich"),
      function("0000:00:1f.2", 0x8086, 0x2922, 0x010601, 4, "ahci"),
      function("0000:05:00.0", 0x1b36, 0x0010, 0x010802, std::nullopt, "nvme"),
  };
}

PluginConfig config(const std::string& json) { return parse_plugin_config(json); }

TEST(K8sSelectGroups, EachMatchingFunctionBringsItsGroupWithItsEndpointsAndNumaNode) {
  const auto devices = host();
  const auto selected = select_groups(config(R"({"resources": [
        {"name": "vfiokit.io/nvme", "devices": ["1b36:0010"]},
        {"name": "vfiokit.io/gpu", "classes": ["0300"]},
        {"name": "vfiokit.io/nic", "bdfs": ["0000:00:03.0"]}]})"),
                                      devices);
  ASSERT_EQ(selected.size(), 3u);
  EXPECT_EQ(selected[0].name, "vfiokit.io/nvme");
  EXPECT_EQ(selected[0].groups,
            (std::vector<SelectedGroup>{{2, {bdf("0000:02:00.0")}, {bdf("0000:02:00.0")}, 0},
                                        {8, {bdf("0000:81:00.0")}, {bdf("0000:81:00.0")}, 1}}));
  ASSERT_EQ(selected[0].refused.size(), 1u);
  EXPECT_EQ(selected[0].refused[0].bdf, bdf("0000:05:00.0"));
  EXPECT_NE(selected[0].refused[0].problem.find("no IOMMU group"), std::string::npos);
  EXPECT_NE(selected[0].refused[0].fix.find("intel_iommu=on"), std::string::npos);
  EXPECT_NE(selected[0].refused[0].fix.find("amd_iommu=on"), std::string::npos);

  // The bridge stays out of the members; the audio function comes with the GPU, but only the
  // GPU is what the resource selected.
  EXPECT_EQ(selected[1].groups,
            (std::vector<SelectedGroup>{
                {1, {bdf("0000:01:00.0"), bdf("0000:01:00.1")}, {bdf("0000:01:00.0")}, 0}}));
  EXPECT_TRUE(selected[1].refused.empty());
  EXPECT_EQ(selected[2].groups,
            (std::vector<SelectedGroup>{{3, {bdf("0000:00:03.0")}, {bdf("0000:00:03.0")}, -1}}));
}

TEST(K8sSelectGroups, MembersOnDifferentNodesMakeTheGroupsNodeUnknown) {
  auto devices = host();
  devices[2].numa_node = 1;  // the audio function
  const auto selected =
      select_groups(config(R"({"resources": [{"name": "a.io/gpu", "classes": ["03"]}]})"), devices);
  ASSERT_EQ(selected[0].groups.size(), 1u);
  EXPECT_EQ(selected[0].groups[0].numa_node, -1);
}

// Under an active IOMMU a driverless function with no group is one no driver has probed yet (a
// device-tree host): the refusal says so and how to give it its group, not "turn the IOMMU on".
TEST(K8sSelectGroups, AGrouplessDriverlessFunctionUnderAnActiveIommuIsToldHowToGetItsGroup) {
  auto devices = host();
  const auto groupless = std::find_if(devices.begin(), devices.end(),
                                      [](const auto& d) { return d.bdf == bdf("0000:05:00.0"); });
  ASSERT_NE(groupless, devices.end());
  ASSERT_FALSE(groupless->iommu_group);
  groupless->driver.reset();
  const auto selected = select_groups(
      config(R"({"resources": [{"name": "vfiokit.io/nvme", "bdfs": ["0000:05:00.0"]}]})"), devices,
      true);
  ASSERT_EQ(selected[0].refused.size(), 1u);
  EXPECT_NE(selected[0].refused[0].problem.find("no IOMMU group yet"), std::string::npos);
  EXPECT_NE(selected[0].refused[0].fix.find("`vfiokit bind 0000:05:00.0`, then `vfiokit unbind "
                                            "0000:05:00.0`"),
            std::string::npos)
      << selected[0].refused[0].fix;
}

TEST(K8sSelectGroups, AGroupTwoResourcesSelectIsRefusedForBothNamingBoth) {
  const auto devices = host();
  const auto selected = select_groups(config(R"({"resources": [
        {"name": "vfiokit.io/gpu", "classes": ["03"]},
        {"name": "vfiokit.io/audio", "classes": ["0403"]},
        {"name": "vfiokit.io/nvme", "bdfs": ["0000:02:00.0"]}]})"),
                                      devices);
  for (std::size_t r = 0; r < 2; ++r) {
    EXPECT_TRUE(selected[r].groups.empty());
    ASSERT_EQ(selected[r].refused.size(), 1u);
    const auto& problem = selected[r].refused[0].problem;
    EXPECT_NE(problem.find("vfiokit.io/gpu and vfiokit.io/audio"), std::string::npos) << problem;
    EXPECT_NE(problem.find("group 1"), std::string::npos) << problem;
    EXPECT_FALSE(selected[r].refused[0].fix.empty());
  }
  EXPECT_EQ(selected[0].refused[0].bdf, bdf("0000:01:00.0"));
  EXPECT_EQ(selected[1].refused[0].bdf, bdf("0000:01:00.1"));
  EXPECT_EQ(selected[2].groups.size(), 1u);  // the others are not affected
}

TEST(K8sSelectGroups, AGroupWithThePlatformsLpcBridgeIsRefused) {
  const auto devices = host();
  const auto selected = select_groups(
      config(R"({"resources": [{"name": "a.io/sata", "classes": ["0106"]}]})"), devices);
  EXPECT_TRUE(selected[0].groups.empty());
  ASSERT_EQ(selected[0].refused.size(), 1u);
  EXPECT_EQ(selected[0].refused[0].bdf, bdf("0000:00:1f.2"));
  EXPECT_NE(selected[0].refused[0].problem.find("0000:00:1f.0, a platform bridge (class 0601)"),
            std::string::npos)
      << selected[0].refused[0].problem;
}

TEST(K8sSelectGroups, ASelectedBridgeIsRefusedAndBringsNothing) {
  const auto devices = host();
  const auto selected =
      select_groups(config(R"({"resources": [{"name": "a.io/b", "classes": ["0604"]}]})"), devices);
  EXPECT_TRUE(selected[0].groups.empty());
  ASSERT_EQ(selected[0].refused.size(), 1u);
  EXPECT_EQ(selected[0].refused[0].bdf, bdf("0000:00:01.0"));
  EXPECT_NE(selected[0].refused[0].problem.find("PCI bridge"), std::string::npos);
}

TEST(K8sSelectGroups, VendorOrDeviceAloneMatchesAndNothingMatchedIsEmpty) {
  const auto devices = host();
  const auto selected = select_groups(config(R"({"resources": [
        {"name": "a.io/any-nvidia", "devices": ["10de:"]},
        {"name": "a.io/none", "devices": ["abcd:"]}]})"),
                                      devices);
  EXPECT_EQ(selected[0].groups.size(), 1u);
  EXPECT_EQ(selected[0].groups[0].group, 1u);
  // "10de:" matches the GPU and its audio function alike: both are selected.
  EXPECT_EQ(selected[0].groups[0].selected,
            (std::vector<pci::Bdf>{bdf("0000:01:00.0"), bdf("0000:01:00.1")}));
  EXPECT_EQ(selected[1], (ResourceGroups{"a.io/none", {}, {}}));
}

TEST(K8sSelectGroups, OrderIsByAddressWhateverTheInputOrder) {
  auto devices = host();
  std::reverse(devices.begin(), devices.end());
  const auto reversed = select_groups(
      config(R"({"resources": [{"name": "a.io/n", "devices": ["1b36:"]}]})"), devices);
  const auto forward =
      select_groups(config(R"({"resources": [{"name": "a.io/n", "devices": ["1b36:"]}]})"), host());
  EXPECT_EQ(reversed, forward);
}

// assess_group: the group 1 of host() as the plugin holds it.
SelectedGroup gpu_group() {
  return {1, {bdf("0000:01:00.0"), bdf("0000:01:00.1")}, {bdf("0000:01:00.0")}, 0};
}
std::vector<pci::PciDevice> gpu_group_on_vfio() {
  return {function("0000:00:01.0", 0x8086, 0x1901, 0x060400, 1, "pcieport"),
          function("0000:01:00.0", 0x10de, 0x1b80, 0x030000, 1, "vfio-pci", 0),
          function("0000:01:00.1", 0x10de, 0x10f0, 0x040300, 1, "vfio-pci", 0)};
}

TEST(K8sAssessGroup, HealthyWhenEveryMemberIsOnVfioTheGroupViableAndTheNodeThere) {
  const auto present = gpu_group_on_vfio();
  const GroupDevice device = assess_group(gpu_group(), present, true);
  EXPECT_EQ(device, (GroupDevice{"0000:01:00.0", 1, gpu_group().members, gpu_group().selected, 0,
                                 Health::healthy, ""}));
}

struct Sickness {
  const char* name;
  std::function<void(std::vector<pci::PciDevice>&)> change;
  bool node = true;
  std::string reason;
};

void PrintTo(const Sickness& s, std::ostream* out) { *out << s.name; }

class K8sAssessGroupUnhealthy : public testing::TestWithParam<Sickness> {};

TEST_P(K8sAssessGroupUnhealthy, SaysWhichFunctionAndWhat) {
  auto present = gpu_group_on_vfio();
  GetParam().change(present);
  const GroupDevice device = assess_group(gpu_group(), present, GetParam().node);
  EXPECT_EQ(device.health, Health::unhealthy);
  EXPECT_EQ(device.reason, GetParam().reason);
  EXPECT_EQ(device.id, "0000:01:00.0");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, K8sAssessGroupUnhealthy,
    testing::Values(
        Sickness{"gone", [](auto& p) { p.erase(p.begin() + 2); }, true,
                 "0000:01:00.1 is gone from the bus"},
        Sickness{"another driver", [](auto& p) { p[1].driver = "nvme"; }, true,
                 "0000:01:00.0 is on nvme, not vfio-pci: another driver took it (vfiokit "
                 "restore / driverctl?)"},
        Sickness{"no driver", [](auto& p) { p[2].driver.reset(); }, true,
                 "0000:01:00.1 has no driver, not vfio-pci: it was unbound (vfiokit restore or "
                 "driverctl?)"},
        Sickness{"bridge on a driver that breaks viability",
                 [](auto& p) { p[0].driver = "shpchp"; }, true,
                 "0000:00:01.0 in IOMMU group 1 is on shpchp, which keeps the group from being "
                 "viable"},
        Sickness{"a function that joined the group",
                 [](auto& p) {
                   p.push_back(function("0000:01:00.2", 0x10de, 0x1ad8, 0x0c0330, 1, "xhci_hcd"));
                 },
                 true,
                 "0000:01:00.2 in IOMMU group 1 is on xhci_hcd, which keeps the group from being "
                 "viable"},
        Sickness{"node missing", [](auto&) {}, false, "/dev/vfio/1 is missing"},
        Sickness{"several at once", [](auto& p) { p.erase(p.begin() + 1); }, false,
                 "0000:01:00.0 is gone from the bus; /dev/vfio/1 is missing"}));

// assess() over a copy of the rig's tree with nvme (group 2) moved to vfio-pci by the fake
// kernel, then changed the way a host changes under a running plugin.
struct RigWithNvmeOnVfio {
  RigWithNvmeOnVfio() : copy(test::fixture("sysfs/rig")), paths(copy.paths()), kernel(paths) {
    move("0000:00:02.0", "nvme", "vfio-pci");
    selection = {{"vfiokit.io/nvme", {{2, {bdf("0000:00:02.0")}, {bdf("0000:00:02.0")}, -1}}, {}}};
  }
  void move(const char* device, const char* from, const char* to) {
    kernel.write(paths.sys / "bus/pci/devices" / device / "driver_override", to, std::nullopt);
    kernel.write(paths.sys / "bus/pci/drivers" / from / "unbind", device, std::nullopt);
    kernel.write(paths.sys / "bus/pci/drivers_probe", device, std::nullopt);
  }
  GroupDevice nvme() {
    const auto resources = assess(paths, selection);
    EXPECT_EQ(resources.size(), 1u);
    EXPECT_EQ(resources.at(0).name, "vfiokit.io/nvme");
    EXPECT_EQ(resources.at(0).devices.size(), 1u);
    return resources.at(0).devices.at(0);
  }

  test::FixtureCopy copy;
  HostPaths paths;
  test::FakeKernel kernel;
  std::vector<ResourceGroups> selection;
};

TEST(K8sAssess, ANvmeOnVfioPciIsHealthy) {
  RigWithNvmeOnVfio rig;
  EXPECT_EQ(rig.nvme(), (GroupDevice{"0000:00:02.0",
                                     2,
                                     {bdf("0000:00:02.0")},
                                     {bdf("0000:00:02.0")},
                                     -1,
                                     Health::healthy,
                                     ""}));
}

TEST(K8sAssess, ARemovedDeviceIsUnhealthyNotAnError) {
  RigWithNvmeOnVfio rig;
  fs::remove(rig.paths.sys / "bus/pci/devices/0000:00:02.0");
  const GroupDevice nvme = rig.nvme();
  EXPECT_EQ(nvme.health, Health::unhealthy);
  EXPECT_EQ(nvme.reason, "0000:00:02.0 is gone from the bus");
}

TEST(K8sAssess, ADeviceAnotherDriverTookIsUnhealthy) {
  RigWithNvmeOnVfio rig;
  rig.kernel.write(rig.paths.sys / "bus/pci/devices/0000:00:02.0/driver_override", "\n",
                   std::nullopt);
  rig.move("0000:00:02.0", "vfio-pci", "nvme");
  ASSERT_EQ(pci::read_driver(rig.paths, bdf("0000:00:02.0")), "nvme");
  const GroupDevice nvme = rig.nvme();
  EXPECT_EQ(nvme.health, Health::unhealthy);
  // The fake kernel removes /dev/vfio/2 with the group's last VFIO user, as VFIO does.
  EXPECT_EQ(nvme.reason,
            "0000:00:02.0 is on nvme, not vfio-pci: another driver took it (vfiokit restore / "
            "driverctl?); /dev/vfio/2 is missing");
}

TEST(K8sAssess, AMissingGroupNodeIsUnhealthy) {
  RigWithNvmeOnVfio rig;
  fs::remove(rig.paths.dev / "vfio/2");
  const GroupDevice nvme = rig.nvme();
  EXPECT_EQ(nvme.health, Health::unhealthy);
  EXPECT_EQ(nvme.reason, "/dev/vfio/2 is missing");
}

TEST(K8sAssess, DevicesAreSortedById) {
  RigWithNvmeOnVfio rig;
  rig.move("0000:00:03.0", "e1000e", "vfio-pci");
  rig.selection[0].groups = {{3, {bdf("0000:00:03.0")}, {bdf("0000:00:03.0")}, -1},
                             {2, {bdf("0000:00:02.0")}, {bdf("0000:00:02.0")}, -1}};
  const auto resources = assess(rig.paths, rig.selection);
  ASSERT_EQ(resources.at(0).devices.size(), 2u);
  EXPECT_EQ(resources[0].devices[0].id, "0000:00:02.0");
  EXPECT_EQ(resources[0].devices[1].id, "0000:00:03.0");
  EXPECT_EQ(resources[0].devices[1].health, Health::healthy);
}

TEST(K8sSelectGroups, OnTheRigsTreeNvmeEduAndTheNicAreGroupsOfTheirOwn) {
  const auto devices = read_functions(test::fixture_sysfs("rig"));
  ASSERT_EQ(devices.size(), 7u);
  const auto selected = select_groups(config(R"({"resources": [
        {"name": "vfiokit.io/nvme", "classes": ["010802"]},
        {"name": "vfiokit.io/edu", "devices": ["1234:11e8"]},
        {"name": "vfiokit.io/sata", "classes": ["0106"]}]})"),
                                      devices);
  EXPECT_EQ(selected[0].groups,
            (std::vector<SelectedGroup>{{2, {bdf("0000:00:02.0")}, {bdf("0000:00:02.0")}, -1}}));
  EXPECT_EQ(selected[1].groups,
            (std::vector<SelectedGroup>{{1, {bdf("0000:00:01.0")}, {bdf("0000:00:01.0")}, -1}}));
  // The ICH9 SATA controller shares group 4 with the LPC bridge and the SMBus controller.
  EXPECT_TRUE(selected[2].groups.empty());
  ASSERT_EQ(selected[2].refused.size(), 1u);
  EXPECT_EQ(selected[2].refused[0].bdf, bdf("0000:00:1f.2"));
}

TEST(K8sHealth, IsNamedInKubeletsWords) {
  EXPECT_EQ(to_string(Health::healthy), "Healthy");
  EXPECT_EQ(to_string(Health::unhealthy), "Unhealthy");
}

}  // namespace
}  // namespace vfiokit::k8s
