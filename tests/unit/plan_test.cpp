#include "vfiokit/bind/plan.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::bind {
namespace {

pci::Bdf bdf(const char* text) { return *pci::parse_bdf(text); }

struct Scenario {
  explicit Scenario(const char* name, std::vector<pci::Bdf> requested_devices)
      : paths(test::fixture_sysfs(name)),
        journal(paths.run / "vfiokit"),
        requested(std::move(requested_devices)),
        view(gather_host_view(paths, requested, journal, 1)) {}
  HostPaths paths;
  Journal journal;
  std::vector<pci::Bdf> requested;
  HostView view;
};

std::vector<std::string> checks_of(const std::vector<Refusal>& refusals) {
  std::vector<std::string> checks;
  for (const auto& r : refusals) {
    checks.push_back(std::string(to_string(r.check)) + "@" + r.bdf.to_string());
  }
  return checks;
}

TEST(PlanBind, PlainEndpointMovesAlone) {
  Scenario s("rig", {bdf("0000:00:02.0")});
  const Plan plan = plan_bind(s.view, s.requested, {});
  EXPECT_FALSE(plan.refused());
  ASSERT_EQ(plan.devices.size(), 1u);
  EXPECT_EQ(plan.devices[0].action, PlannedAction::move);
  EXPECT_EQ(plan.devices[0].current_driver, "nvme");
  EXPECT_EQ(plan.devices[0].target_driver, "vfio-pci");
  EXPECT_EQ(plan.devices[0].original_driver, "nvme");
}

TEST(PlanBind, GpuTakesItsAudioFunctionAlongAndTheRootPortStays) {
  Scenario s("gpu-audio-group", {bdf("0000:01:00.0")});
  const Plan plan = plan_bind(s.view, s.requested, {});
  EXPECT_FALSE(plan.refused()) << checks_of(plan.refusals).front();
  ASSERT_EQ(plan.devices.size(), 3u);
  EXPECT_EQ(plan.devices[0].bdf, bdf("0000:01:00.0"));  // requested first
  EXPECT_TRUE(plan.devices[0].requested);
  EXPECT_EQ(plan.devices[1].bdf, bdf("0000:00:01.0"));
  EXPECT_EQ(plan.devices[1].action, PlannedAction::stay);
  EXPECT_EQ(plan.devices[1].note, "bridge, stays on pcieport");
  EXPECT_EQ(plan.devices[2].bdf, bdf("0000:01:00.1"));
  EXPECT_EQ(plan.devices[2].action, PlannedAction::move);
  EXPECT_FALSE(plan.devices[2].requested);
  EXPECT_EQ(plan.devices[2].note, "shares IOMMU group 1");
  EXPECT_EQ(plan.moves().size(), 2u);
}

TEST(PlanBind, ADisplayInUseIsRefusedUnlessForcedNamingEachUserAndTheFix) {
  Scenario s("gpu-in-use", {bdf("0000:0a:00.0")});
  Plan plan = plan_bind(s.view, s.requested, {});
  ASSERT_EQ(checks_of(plan.refusals), std::vector<std::string>{"display@0000:0a:00.0"});
  const Refusal& refusal = plan.refusals[0];
  EXPECT_EQ(refusal.force_flag(), "--force-display");
  for (const char* part :
       {"Xorg (pid 812) holds /dev/dri/card0", "gnome-shell (pid 1400) holds /dev/dri/renderD128",
        "the framebuffer console (vtcon1) is bound to fb0",
        "efifb claims 0x7c00000000-0x7c007e8fff in BAR0", "its driver is amdgpu",
        "systemctl stop display-manager", "echo 0 > /sys/class/vtconsole/vtcon1/bind",
        "video=efifb:off"}) {
    EXPECT_NE(refusal.reason.find(part), std::string::npos) << part << " in " << refusal.reason;
  }
  EXPECT_EQ(refusal.reason.find("vfiokit (pid 1)"), std::string::npos);  // ourselves
  EXPECT_NE(refusal_error(plan, "bind").hint().find("--force-display"), std::string::npos);
  ForceFlags force;
  force.display = true;
  plan = plan_bind(s.view, s.requested, force);
  EXPECT_FALSE(plan.refused());
  EXPECT_EQ(checks_of(plan.forced), std::vector<std::string>{"display@0000:0a:00.0"});
  EXPECT_EQ(to_string(Check::display), "display");
}

TEST(PlanBind, AnIdleGpuOnItsDriverIsNotADisplayInUse) {
  Scenario s("gpu-audio-group", {bdf("0000:01:00.0")});
  EXPECT_EQ(s.view.devices.at(bdf("0000:01:00.0")).display.gpu_driver, "nouveau");
  EXPECT_FALSE(s.view.devices.at(bdf("0000:01:00.0")).display.in_use());
  EXPECT_FALSE(plan_bind(s.view, s.requested, {}).refused());
}

TEST(PlanBind, RequestingTheBridgeItselfIsRefusedForGood) {
  Scenario s("gpu-audio-group", {bdf("0000:00:01.0")});
  const Plan plan = plan_bind(s.view, s.requested, ForceFlags{true, true, true, true, true});
  EXPECT_EQ(checks_of(plan.refusals), std::vector<std::string>{"bridge@0000:00:01.0"});
  EXPECT_TRUE(plan.refusals[0].force_flag().empty());
}

TEST(PlanBind, BootVgaIsRefusedUnlessForced) {
  Scenario s("boot-vga", {bdf("0000:00:02.0")});
  Plan plan = plan_bind(s.view, s.requested, {});
  ASSERT_EQ(checks_of(plan.refusals), std::vector<std::string>{"boot-vga@0000:00:02.0"});
  EXPECT_EQ(plan.refusals[0].force_flag(), "--force-boot-vga");
  ForceFlags force;
  force.boot_vga = true;
  plan = plan_bind(s.view, s.requested, force);
  EXPECT_FALSE(plan.refused());
  EXPECT_EQ(checks_of(plan.forced), std::vector<std::string>{"boot-vga@0000:00:02.0"});
}

TEST(PlanBind, SriovPfWithVfsAndLiveNetworkIsRefusedTwice) {
  Scenario s("sriov-pf", {bdf("0000:03:00.0")});
  const Plan plan = plan_bind(s.view, s.requested, {});
  EXPECT_EQ(checks_of(plan.refusals),
            (std::vector<std::string>{"net@0000:03:00.0", "sriov@0000:03:00.0"}));
  EXPECT_NE(plan.refusals[0].reason.find("eth1 is up"), std::string::npos);
  EXPECT_NE(plan.refusals[1].reason.find("2 virtual functions"), std::string::npos);
  ForceFlags only_net;
  only_net.net = true;
  EXPECT_EQ(checks_of(plan_bind(s.view, s.requested, only_net).refusals),
            std::vector<std::string>{"sriov@0000:03:00.0"});
}

TEST(PlanBind, EnslavedPortIsRefusedAndAVirtualFunctionIsNot) {
  Scenario port("sriov-pf", {bdf("0000:03:00.1")});
  const Plan plan = plan_bind(port.view, port.requested, {});
  ASSERT_EQ(checks_of(plan.refusals), std::vector<std::string>{"net@0000:03:00.1"});
  EXPECT_NE(plan.refusals[0].reason.find("enslaved to bond0"), std::string::npos);
  Scenario vf("sriov-pf", {bdf("0000:03:02.0")});
  EXPECT_FALSE(plan_bind(vf.view, vf.requested, {}).refused());
}

TEST(PlanBind, MountedAndHeldDiskIsRefusedTheIdleOneIsNot) {
  Scenario busy("mounted-disk", {bdf("0000:04:00.0")});
  const Plan plan = plan_bind(busy.view, busy.requested, {});
  ASSERT_EQ(checks_of(plan.refusals), std::vector<std::string>{"block@0000:04:00.0"});
  EXPECT_NE(plan.refusals[0].reason.find("mounted on /boot/efi"), std::string::npos);
  EXPECT_NE(plan.refusals[0].reason.find("held by dm-0"), std::string::npos);
  EXPECT_EQ(plan.refusals[0].force_flag(), "--force-block");
  Scenario idle("mounted-disk", {bdf("0000:05:00.0")});
  EXPECT_FALSE(plan_bind(idle.view, idle.requested, {}).refused());
}

TEST(PlanBind, NoIommuIsRefusedEvenWhenEverythingIsForced) {
  Scenario s("no-iommu", {bdf("0000:00:1f.6")});
  const Plan plan = plan_bind(s.view, s.requested, ForceFlags{true, true, true, true, true});
  EXPECT_EQ(checks_of(plan.refusals), std::vector<std::string>{"iommu@0000:00:1f.6"});
}

// On a device-tree host (the arm64 rig, tests/fixtures/hosts/arm64-rig) the IOMMU is active but
// edu, with no driver yet, has no group: bind plans to let vfio-pci probe it (execute_bind then
// checks the group it joins). A groupless device that a driver already holds is not covered by
// the IOMMU, and nothing overrides that.
TEST(PlanBind, AGrouplessDriverlessDeviceUnderAnActiveIommuLearnsItsGroupFromTheProbe) {
  const HostPaths paths = test::fixture_host("arm64-rig");
  const Journal journal(paths.run / "vfiokit");
  const std::vector<pci::Bdf> edu{bdf("0000:00:01.0")};
  HostView view = gather_host_view(paths, edu, journal, 1);
  EXPECT_TRUE(view.iommu_active);
  Plan plan = plan_bind(view, edu, {});
  EXPECT_FALSE(plan.refused());
  ASSERT_EQ(plan.devices.size(), 1u);
  EXPECT_TRUE(plan.devices[0].learns_group);
  EXPECT_EQ(plan.devices[0].action, PlannedAction::move);
  EXPECT_NE(plan.devices[0].note.find("no IOMMU group until a driver probes it"),
            std::string::npos);

  view.devices.at(edu[0]).device.driver = "some_driver";
  plan = plan_bind(view, edu, ForceFlags{true, true, true, true, true, true});
  EXPECT_EQ(checks_of(plan.refusals), std::vector<std::string>{"iommu@0000:00:01.0"});
  EXPECT_NE(plan.refusals[0].reason.find("the IOMMU does not cover it"), std::string::npos);

  view.devices.at(edu[0]).device.driver.reset();
  view.iommu_active = false;
  plan = plan_bind(view, edu, {});
  EXPECT_EQ(checks_of(plan.refusals), std::vector<std::string>{"iommu@0000:00:01.0"});
  EXPECT_NE(plan.refusals[0].reason.find("the IOMMU is off"), std::string::npos);
}

TEST(PlanBind, ADeviceAlreadyOnVfioIsLeftAloneEvenWhileInUse) {
  Scenario s("vfio-in-use", {bdf("0000:06:00.0")});
  const Plan plan = plan_bind(s.view, s.requested, {});
  EXPECT_FALSE(plan.refused());
  ASSERT_EQ(plan.devices.size(), 1u);
  EXPECT_EQ(plan.devices[0].action, PlannedAction::already);
  EXPECT_TRUE(plan.moves().empty());
}

TEST(PlanBind, DuplicatesAndTwoMembersOfOneGroupPlanEachDeviceOnce) {
  Scenario s("gpu-audio-group", {bdf("0000:01:00.1"), bdf("0000:01:00.0"), bdf("0000:01:00.1")});
  const Plan plan = plan_bind(s.view, s.requested, {});
  ASSERT_EQ(plan.devices.size(), 3u);
  EXPECT_EQ(plan.devices[0].bdf, bdf("0000:01:00.1"));
  EXPECT_EQ(plan.devices[1].bdf, bdf("0000:01:00.0"));
  EXPECT_TRUE(plan.devices[1].requested);
}

TEST(PlanBind, AnUnknownDeviceFailsWhileGathering) {
  const HostPaths paths = test::fixture_sysfs("rig");
  const Journal journal(paths.run / "vfiokit");
  const std::vector<pci::Bdf> requested{bdf("0000:00:09.0")};
  EXPECT_THROW(gather_host_view(paths, requested, journal, 1), Error);
}

TEST(PlanUnbind, AGroupInUseIsRefusedUnlessForced) {
  Scenario s("vfio-in-use", {bdf("0000:06:00.0")});
  Plan plan = plan_unbind(s.view, s.requested, {});
  ASSERT_EQ(checks_of(plan.refusals), std::vector<std::string>{"group-in-use@0000:06:00.0"});
  EXPECT_NE(plan.refusals[0].reason.find("/dev/vfio/11 (qemu-system-x86, pid 4242)"),
            std::string::npos);
  ForceFlags force;
  force.group_in_use = true;
  plan = plan_unbind(s.view, s.requested, force);
  EXPECT_FALSE(plan.refused());
  ASSERT_EQ(plan.moves().size(), 1u);
  // Not journalled: it goes to whatever drivers_probe picks.
  EXPECT_FALSE(plan.devices[0].target_driver);
}

TEST(PlanUnbind, DevicesOnHostDriversAreLeftAlone) {
  Scenario s("rig", {bdf("0000:00:02.0")});
  const Plan plan = plan_unbind(s.view, s.requested, {});
  ASSERT_EQ(plan.devices.size(), 1u);
  EXPECT_EQ(plan.devices[0].action, PlannedAction::already);
}

}  // namespace
}  // namespace vfiokit::bind

namespace vfiokit::bind {
namespace {

TEST(PlanChecks, EachCheckHasItsNameAndOnlyHostUseChecksHaveAForceFlag) {
  const std::vector<std::pair<Check, std::string>> names = {
      {Check::boot_vga, "boot-vga"}, {Check::net, "net"},
      {Check::block, "block"},       {Check::group_in_use, "group-in-use"},
      {Check::sriov, "sriov"},       {Check::iommu, "iommu"},
      {Check::bridge, "bridge"},     {Check::group_viable, "group-viable"}};
  for (const auto& [check, name] : names) {
    SCOPED_TRACE(name);
    EXPECT_EQ(to_string(check), name);
    ForceFlags force;
    bool* flag = force.flag(check);
    const bool overridable = check == Check::boot_vga || check == Check::net ||
                             check == Check::block || check == Check::group_in_use ||
                             check == Check::sriov;
    ASSERT_EQ(flag != nullptr, overridable);
    EXPECT_EQ(force_flag(check), overridable ? "--force-" + name : "");
    EXPECT_FALSE(force.overrides(check));
    if (flag) *flag = true;
    EXPECT_EQ(force.overrides(check), overridable);
  }
}

TEST(PlanChecks, EndpointsAreEverythingButTheBridgesThatStay) {
  const HostPaths paths = test::fixture_sysfs("gpu-audio-group");
  const Journal journal(paths.run / "vfiokit");
  const std::vector<pci::Bdf> requested{*pci::parse_bdf("0000:01:00.1")};
  const Plan plan = plan_bind(gather_host_view(paths, requested, journal, 1), requested, {});
  EXPECT_EQ(plan.endpoints(), (std::vector<pci::Bdf>{*pci::parse_bdf("0000:01:00.1"),
                                                     *pci::parse_bdf("0000:01:00.0")}));
}

TEST(PlanChecks, ARefusalErrorNamesEachRefusalAndEachOverrideOnce) {
  const HostPaths paths = test::fixture_sysfs("sriov-pf");
  const Journal journal(paths.run / "vfiokit");
  const std::vector<pci::Bdf> requested{*pci::parse_bdf("0000:03:00.0")};
  const Error e = refusal_error(
      plan_bind(gather_host_view(paths, requested, journal, 1), requested, {}), "bind");
  EXPECT_EQ(e.kind(), ErrorKind::refused);
  EXPECT_NE(e.context_value("0000:03:00.0 net"), "");
  EXPECT_NE(e.context_value("0000:03:00.0 sriov"), "");
  EXPECT_EQ(e.hint(), "if you are sure, override with --force-net --force-sriov");
}

}  // namespace
}  // namespace vfiokit::bind

namespace vfiokit::bind {
namespace {

// A hot-plug race: the device names its IOMMU group, but the group's devices/ does not list it
// (yet, or any more), while the group node is held.
TEST(PlanRace, AGroupThatDoesNotListTheDeviceStillPlansAndChecksItsHolders) {
  test::FixtureCopy copy(test::fixture("sysfs/vfio-in-use"));
  std::filesystem::remove(copy.root() / "sys/kernel/iommu_groups/11/devices/0000:06:00.0");
  const HostPaths paths = copy.paths();
  const Journal journal(paths.run / "vfiokit");
  const std::vector<pci::Bdf> requested{bdf("0000:06:00.0")};
  const HostView view = gather_host_view(paths, requested, journal, 1);
  const Plan unbind = plan_unbind(view, requested, {});
  ASSERT_EQ(checks_of(unbind.refusals), std::vector<std::string>{"group-in-use@0000:06:00.0"});
  ASSERT_EQ(unbind.devices.size(), 1u);
  EXPECT_EQ(plan_restore(view, requested, {}).devices.size(), 1u);
  EXPECT_FALSE(plan_bind(view, requested, {}).refused());
}

}  // namespace
}  // namespace vfiokit::bind

namespace vfiokit::bind {
namespace {

TEST(PlanUnbind, ADeviceFdKeptAfterTheGroupWasClosedIsInUseToo) {
  Scenario by_fd("vfio-device-fds", {bdf("0000:08:00.0")});
  const Plan first = plan_unbind(by_fd.view, by_fd.requested, {});
  ASSERT_EQ(checks_of(first.refusals), std::vector<std::string>{"group-in-use@0000:08:00.0"});
  EXPECT_NE(first.refusals[0].reason.find("a VFIO device fd for 0000:08:00.0 (cloud-hyperviso"),
            std::string::npos)
      << first.refusals[0].reason;
  Scenario by_cdev("vfio-device-fds", {bdf("0000:09:00.0")});
  const Plan second = plan_unbind(by_cdev.view, by_cdev.requested, {});
  ASSERT_EQ(checks_of(second.refusals), std::vector<std::string>{"group-in-use@0000:09:00.0"});
  EXPECT_NE(second.refusals[0].reason.find("/dev/vfio/devices/vfio1"), std::string::npos);
  EXPECT_EQ(second.refusals[0].reason.find("iommufd-tool"), std::string::npos);
}

}  // namespace
}  // namespace vfiokit::bind

namespace vfiokit::bind {
namespace {

void write_entry(const HostPaths& paths, const char* device, std::string_view text) {
  const auto devices = paths.run / "vfiokit/devices";
  std::filesystem::create_directories(devices);
  write_file_durable(devices / device, text);
}

std::string entry_text(const char* device, const char* original_driver) {
  return format_journal_entry({bdf(device), 1, std::string(original_driver), std::nullopt,
                               "vfio-pci", JournalState::bound, 1});
}

TEST(PlanRestore, EveryUsableEntryIsSelectedAndEachBadOrStaleOneLeftWithItsFix) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const HostPaths paths = copy.paths();
  write_entry(paths, "0000:01:00.0", entry_text("0000:01:00.0", "nouveau"));
  write_entry(paths, "0000:01:00.1", "vfiokit-journal 1\nbdf 0000:01:00.1\ngro");  // truncated
  write_entry(paths, "0000:0a:00.0", entry_text("0000:0a:00.0", "ixgbevf"));       // unplugged
  const Journal journal(paths.run / "vfiokit");

  const RestoreSelection all = select_for_restore(paths, journal, {});
  EXPECT_EQ(all.devices, std::vector<pci::Bdf>{bdf("0000:01:00.0")});
  ASSERT_EQ(all.left.size(), 2u);
  EXPECT_EQ(all.left[0].bdf, bdf("0000:01:00.1"));
  EXPECT_NE(all.left[0].problem.find("damaged"), std::string::npos);
  EXPECT_EQ(all.left[1].path, paths.run / "vfiokit/devices/0000:0a:00.0");
  EXPECT_NE(all.left[1].problem.find("0000:0a:00.0 is not on this host any more"),
            std::string::npos);
  EXPECT_NE(all.left[1].problem.find("it was on ixgbevf"), std::string::npos);
  EXPECT_NE(all.left[1].fix.find("vfiokit restore 0000:0a:00.0"), std::string::npos);

  const std::vector<pci::Bdf> gpu{bdf("0000:01:00.0")};
  const RestoreSelection named = select_for_restore(paths, journal, gpu);
  EXPECT_EQ(named.devices, gpu);
  EXPECT_TRUE(named.left.empty());
  const std::vector<pci::Bdf> audio{bdf("0000:01:00.1")};
  EXPECT_TRUE(select_for_restore(paths, journal, audio).devices.empty());
  EXPECT_EQ(select_for_restore(paths, journal, audio).left.size(), 1u);
  const std::vector<pci::Bdf> unknown{bdf("0000:0b:00.0")};
  EXPECT_THROW(select_for_restore(paths, journal, unknown), Error);

  // A damaged entry in the group does not stop planning the rest, and nothing moves a device
  // whose origin is unknown.
  const HostView view = gather_host_view(paths, gpu, journal, 1);
  EXPECT_FALSE(plan_restore(view, gpu, {}).refused());
  const Plan bind = plan_bind(view, gpu, {});
  EXPECT_EQ(checks_of(bind.refusals), std::vector<std::string>{"journal@0000:01:00.1"});
  EXPECT_NE(bind.refusals[0].reason.find("0000:01:00.1 cannot be used"), std::string::npos)
      << bind.refusals[0].reason;
}

}  // namespace
}  // namespace vfiokit::bind
