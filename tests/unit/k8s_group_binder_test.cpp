// The device plugin's groups held on vfio-pci (k8s/group_binder.h) against the fake kernel:
// binds, refusals, rollback, reconciling with a journal a killed plugin left, adoption,
// keepBound, and nothing left without a driver.
#include "vfiokit/k8s/group_binder.h"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>

#include "tests/unit/fake_kernel.h"
#include "tests/unit/fixtures.h"
#include "vfiokit/bind/journal.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::k8s {
namespace {

using Write = test::FakeKernel::Write;
using Drivers = std::map<std::string, std::optional<std::string>>;

pci::Bdf bdf(const char* text) { return *pci::parse_bdf(text); }

struct Host {
  explicit Host(const char* fixture)
      : copy(test::fixture("sysfs") / fixture), paths(copy.paths()), kernel(paths) {}

  BinderOptions options(bool keep_bound = false) {
    BinderOptions o;
    o.lock_wait = std::chrono::milliseconds(0);
    o.ops = &kernel;
    o.keep_bound = keep_bound;
    return o;
  }
  bind::Journal journal() const { return bind::Journal(paths.run / "vfiokit"); }
  // Every device named is on the driver given (nullopt: none, as it came).
  void expect_drivers(const Drivers& expected) const {
    for (const auto& [device, driver] : expected) {
      EXPECT_EQ(pci::read_driver(paths, bdf(device.c_str())), driver) << device;
    }
  }

  test::FixtureCopy copy;
  HostPaths paths;
  test::FakeKernel kernel;
};

// The rig's devices as it boots: edu has no driver of its own.
const Drivers kRigHome{
    {"0000:00:01.0", std::nullopt}, {"0000:00:02.0", "nvme"}, {"0000:00:03.0", "e1000e"}};

std::vector<ResourceGroups> rig_resources() {
  return {{"vfiokit.io/nvme", {{2, {bdf("0000:00:02.0")}, {bdf("0000:00:02.0")}, -1}}, {}},
          {"vfiokit.io/edu", {{1, {bdf("0000:00:01.0")}, {bdf("0000:00:01.0")}, -1}}, {}}};
}

TEST(K8sGroupBinder, BindsAGroupWithTheJournalAndGivesItBackAtTheEnd) {
  Host host("gpu-audio-group");
  const std::vector<ResourceGroups> resources{
      {"vfiokit.io/gpu",
       {{1, {bdf("0000:01:00.0"), bdf("0000:01:00.1")}, {bdf("0000:01:00.0")}, -1}},
       {}}};
  {
    GroupBinder binder(host.paths, host.options());
    const auto outcomes = binder.take(resources);
    ASSERT_EQ(outcomes.size(), 1u);
    EXPECT_EQ(outcomes[0].state, GroupState::bound) << outcomes[0].detail;
    EXPECT_EQ(outcomes[0].group, 1u);
    EXPECT_EQ(outcomes[0].detail,
              "moved 0000:01:00.0 (nouveau), 0000:01:00.1 (snd_hda_intel) to vfio-pci");
    EXPECT_TRUE(outcomes[0].held());
    host.expect_drivers(
        {{"0000:01:00.0", "vfio-pci"}, {"0000:01:00.1", "vfio-pci"}, {"0000:00:01.0", "pcieport"}});
    const auto entries = host.journal().entries();
    ASSERT_EQ(entries.size(), 2u);
    for (const auto& entry : entries) EXPECT_EQ(entry.state, bind::JournalState::bound);
    EXPECT_EQ(binder.to_give_back(),
              (std::vector<pci::Bdf>{bdf("0000:01:00.0"), bdf("0000:01:00.1")}));
  }
  host.expect_drivers({{"0000:01:00.0", "nouveau"},
                       {"0000:01:00.1", "snd_hda_intel"},
                       {"0000:00:01.0", "pcieport"}});
  EXPECT_TRUE(host.journal().entries().empty());
}

TEST(K8sGroupBinder, ARefusedGroupIsReportedNotThrownAndNothingIsWritten) {
  Host host("boot-vga");
  const std::vector<ResourceGroups> resources{
      {"vfiokit.io/igpu", {{1, {bdf("0000:00:02.0")}, {bdf("0000:00:02.0")}, -1}}, {}}};
  GroupBinder binder(host.paths, host.options());
  const auto outcomes = binder.take(resources);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].state, GroupState::refused);
  EXPECT_FALSE(outcomes[0].held());
  EXPECT_NE(outcomes[0].detail.find("0000:00:02.0: "), std::string::npos) << outcomes[0].detail;
  EXPECT_NE(outcomes[0].fix.find("vfiokit bind 0000:00:02.0"), std::string::npos)
      << outcomes[0].fix;
  EXPECT_NE(outcomes[0].fix.find("--force-boot-vga"), std::string::npos) << outcomes[0].fix;
  EXPECT_TRUE(host.kernel.writes.empty());
  EXPECT_TRUE(binder.to_give_back().empty());
  EXPECT_TRUE(binder.give_back().empty());
  host.expect_drivers({{"0000:00:02.0", "i915"}});

  const auto held = held_groups(resources, outcomes);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_TRUE(held[0].groups.empty());
  ASSERT_EQ(held[0].refused.size(), 1u);
  EXPECT_EQ(held[0].refused[0].problem, outcomes[0].detail);
  EXPECT_EQ(held[0].refused[0].fix, outcomes[0].fix);
}

TEST(K8sGroupBinder, AFailedBindIsRolledBackAndTheOtherGroupsStayBound) {
  Host host("rig");
  host.kernel.fail_write_at = 1;  // nvme's unbind: override, UNBIND, probe
  {
    GroupBinder binder(host.paths, host.options());
    const auto resources = rig_resources();
    const auto outcomes = binder.take(resources);
    ASSERT_EQ(outcomes.size(), 2u);
    EXPECT_EQ(outcomes[0].state, GroupState::failed);
    EXPECT_NE(outcomes[0].detail.find("rolled back"), std::string::npos) << outcomes[0].detail;
    EXPECT_EQ(outcomes[1].state, GroupState::bound) << outcomes[1].detail;
    host.expect_drivers({{"0000:00:02.0", "nvme"}, {"0000:00:01.0", "vfio-pci"}});
    const auto entries = host.journal().entries();
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].bdf, bdf("0000:00:01.0"));
    EXPECT_EQ(binder.to_give_back(), std::vector<pci::Bdf>{bdf("0000:00:01.0")});

    const auto held = held_groups(resources, outcomes);
    EXPECT_TRUE(held[0].groups.empty());
    EXPECT_EQ(held[0].refused.size(), 1u);
    EXPECT_EQ(held[1].groups, resources[1].groups);
  }
  host.expect_drivers(kRigHome);
  EXPECT_TRUE(host.journal().entries().empty());
}

TEST(K8sGroupBinder, ABindAKilledPluginLeftHalfDoneGoesHomeFirstThenIsBoundAfresh) {
  Host host("rig");
  // What a plugin killed with -9 between nvme's unbind and its probe leaves: the entry says
  // `binding`, the device has no driver and vfio-pci's override.
  host.journal().record({bdf("0000:00:02.0"), 2, "nvme", std::nullopt, "vfio-pci",
                         bind::JournalState::binding, 4242});
  host.kernel.write(host.paths.sys / "bus/pci/devices/0000:00:02.0/driver_override", "vfio-pci",
                    std::nullopt);
  host.kernel.write(host.paths.sys / "bus/pci/drivers/nvme/unbind", "0000:00:02.0", std::nullopt);
  host.kernel.writes.clear();
  ASSERT_EQ(pci::read_driver(host.paths, bdf("0000:00:02.0")), std::nullopt);

  GroupBinder binder(host.paths, host.options());
  const std::vector<ResourceGroups> resources{rig_resources()[0]};
  const auto outcomes = binder.take(resources);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].state, GroupState::bound) << outcomes[0].detail;
  EXPECT_EQ(outcomes[0].detail,
            "took 0000:00:02.0 home first (a bind of them had been cut short); moved "
            "0000:00:02.0 (nvme) to vfio-pci");
  EXPECT_EQ(host.kernel.writes, (std::vector<Write>{
                                    {"bus/pci/devices/0000:00:02.0/driver_override", "\n"},
                                    {"bus/pci/drivers/nvme/bind", "0000:00:02.0"},
                                    {"bus/pci/devices/0000:00:02.0/driver_override", "vfio-pci"},
                                    {"bus/pci/drivers/nvme/unbind", "0000:00:02.0"},
                                    {"bus/pci/drivers_probe", "0000:00:02.0"},
                                }));
  const auto entry = host.journal().find(bdf("0000:00:02.0"));
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->state, bind::JournalState::bound);
  EXPECT_EQ(entry->original_driver, "nvme");
  EXPECT_EQ(entry->original_override, std::nullopt);

  const auto returned = binder.give_back();
  ASSERT_EQ(returned.size(), 1u);
  EXPECT_TRUE(returned[0].ok) << returned[0].detail;
  host.expect_drivers(kRigHome);
  EXPECT_EQ(pci::read_driver_override(host.paths, bdf("0000:00:02.0")), std::nullopt);
}

TEST(K8sGroupBinder, KeepBoundLeavesTheGroupsAndTheNextPluginAdoptsAndGivesThemBack) {
  Host host("rig");
  const auto resources = rig_resources();
  {
    GroupBinder first(host.paths, host.options(/*keep_bound=*/true));
    const auto outcomes = first.take(resources);
    ASSERT_EQ(outcomes.size(), 2u);
    EXPECT_EQ(outcomes[0].state, GroupState::bound);
    EXPECT_EQ(outcomes[1].state, GroupState::bound);
    EXPECT_TRUE(first.to_give_back().empty());
  }
  host.expect_drivers({{"0000:00:02.0", "vfio-pci"}, {"0000:00:01.0", "vfio-pci"}});
  ASSERT_EQ(host.journal().entries().size(), 2u);

  host.kernel.writes.clear();
  GroupBinder second(host.paths, host.options());
  const auto outcomes = second.take(resources);
  ASSERT_EQ(outcomes.size(), 2u);
  for (const auto& outcome : outcomes) {
    EXPECT_EQ(outcome.state, GroupState::adopted) << outcome.detail;
    EXPECT_NE(outcome.detail.find("go home from the journal"), std::string::npos) << outcome.detail;
  }
  EXPECT_TRUE(host.kernel.writes.empty());
  EXPECT_EQ(second.to_give_back(),
            (std::vector<pci::Bdf>{bdf("0000:00:02.0"), bdf("0000:00:01.0")}));

  const auto returned = second.give_back();
  ASSERT_EQ(returned.size(), 2u);
  for (const auto& outcome : returned) EXPECT_TRUE(outcome.ok) << outcome.detail;
  host.expect_drivers(kRigHome);
  EXPECT_TRUE(host.journal().entries().empty());
  EXPECT_TRUE(second.give_back().empty());  // once
}

TEST(K8sGroupBinder, ADeviceOnVfioWithoutAJournalEntryIsAdoptedButNeverGivenBack) {
  Host host("vfio-in-use");
  const std::vector<ResourceGroups> resources{
      {"vfiokit.io/nvme", {{11, {bdf("0000:06:00.0")}, {bdf("0000:06:00.0")}, -1}}, {}}};
  {
    GroupBinder binder(host.paths, host.options());
    const auto outcomes = binder.take(resources);
    ASSERT_EQ(outcomes.size(), 1u);
    EXPECT_EQ(outcomes[0].state, GroupState::adopted);
    EXPECT_NE(outcomes[0].detail.find("original driver is unknown"), std::string::npos)
        << outcomes[0].detail;
    EXPECT_TRUE(binder.to_give_back().empty());
  }
  EXPECT_TRUE(host.kernel.writes.empty());
  host.expect_drivers({{"0000:06:00.0", "vfio-pci"}});
}

TEST(K8sGroupBinder, ADeviceGoneBeforeTheGiveBackIsReportedAndTheOthersGoHome) {
  Host host("rig");
  GroupBinder binder(host.paths, host.options());
  const auto resources = rig_resources();
  const auto outcomes = binder.take(resources);
  ASSERT_EQ(outcomes.size(), 2u);
  std::filesystem::remove(host.paths.sys / "bus/pci/devices/0000:00:02.0");
  const auto returned = binder.give_back();
  ASSERT_EQ(returned.size(), 2u);
  EXPECT_EQ(returned[0].bdf, bdf("0000:00:02.0"));
  EXPECT_FALSE(returned[0].ok);
  EXPECT_NE(returned[0].detail.find("gone from the bus"), std::string::npos);
  EXPECT_EQ(returned[1].bdf, bdf("0000:00:01.0"));
  EXPECT_TRUE(returned[1].ok) << returned[1].detail;
  host.expect_drivers({{"0000:00:01.0", std::nullopt}});
}

TEST(K8sGroupBinder, ADamagedJournalEntryRefusesItsGroupAndTouchesNothing) {
  Host host("rig");
  host.journal().record({bdf("0000:00:02.0"), 2, "nvme", std::nullopt, "vfio-pci",
                         bind::JournalState::binding, 4242});
  {
    std::ofstream damaged(host.journal().entry_path(bdf("0000:00:02.0")), std::ios::trunc);
    damaged << "not a journal\n";
  }
  {
    GroupBinder binder(host.paths, host.options());
    const auto resources = rig_resources();
    const auto outcomes = binder.take(resources);
    ASSERT_EQ(outcomes.size(), 2u);
    EXPECT_EQ(outcomes[0].state, GroupState::refused);
    EXPECT_NE(outcomes[0].detail.find("journal entry"), std::string::npos) << outcomes[0].detail;
    EXPECT_EQ(outcomes[1].state, GroupState::bound) << outcomes[1].detail;
    host.expect_drivers({{"0000:00:02.0", "nvme"}, {"0000:00:01.0", "vfio-pci"}});
    EXPECT_EQ(binder.to_give_back(), std::vector<pci::Bdf>{bdf("0000:00:01.0")});
  }
  host.expect_drivers(kRigHome);
  // The damaged entry is left for a person to look at.
  EXPECT_TRUE(std::filesystem::exists(host.journal().entry_path(bdf("0000:00:02.0"))));
}

TEST(K8sGroupBinder, OnceASignalCameNoFurtherGroupIsTouched) {
  Host host("rig");
  BinderOptions options = host.options();
  options.interrupted = [] { return SIGTERM; };
  GroupBinder binder(host.paths, options);
  const auto resources = rig_resources();
  const auto outcomes = binder.take(resources);
  ASSERT_EQ(outcomes.size(), 2u);
  for (const auto& outcome : outcomes) {
    EXPECT_EQ(outcome.state, GroupState::failed);
    EXPECT_EQ(outcome.detail, "not bound: stopped by SIGTERM first");
  }
  EXPECT_TRUE(host.kernel.writes.empty());
  host.expect_drivers(kRigHome);
}

TEST(K8sGroupState, Names) {
  EXPECT_EQ(to_string(GroupState::bound), "bound");
  EXPECT_EQ(to_string(GroupState::adopted), "adopted");
  EXPECT_EQ(to_string(GroupState::refused), "refused");
  EXPECT_EQ(to_string(GroupState::failed), "failed");
}

}  // namespace
}  // namespace vfiokit::k8s
