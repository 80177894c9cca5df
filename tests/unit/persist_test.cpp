#include "vfiokit/bind/persist.h"

#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::bind {
namespace {

PersistEntry gpu() { return {*pci::parse_bdf("0000:01:00.0"), 0x10de, 0x2204, "nouveau"}; }
PersistEntry audio() { return {*pci::parse_bdf("0000:01:00.1"), 0x10de, 0x1aef, "snd_hda_intel"}; }

TEST(Persist, UdevRuleSetsTheOverrideInTheAddEventForThisCardOnly) {
  const std::string rule = render_udev_rule(gpu());
  EXPECT_NE(rule.find("ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:01:00.0\", "
                      "ATTR{vendor}==\"0x10de\", ATTR{device}==\"0x2204\", "
                      "ATTR{driver_override}=\"vfio-pci\"\n"),
            std::string::npos)
      << rule;
  EXPECT_EQ(parse_udev_rule(rule), gpu());
  PersistEntry driverless = gpu();
  driverless.host_driver.reset();
  EXPECT_EQ(parse_udev_rule(render_udev_rule(driverless)), driverless);
}

TEST(Persist, ForeignOrDamagedRulesAreNotOurs) {
  EXPECT_FALSE(parse_udev_rule("ACTION==\"add\", RUN+=\"/bin/true\"\n"));
  EXPECT_FALSE(parse_udev_rule("# vfiokit-persist bdf=0000:01:00.0\n"));  // no id
  EXPECT_FALSE(parse_udev_rule("# vfiokit-persist bdf=01:00 id=10de:2204 host-driver=-\n"));
  EXPECT_FALSE(parse_udev_rule("# vfiokit-persist bdf=0000:01:00.0 id=10de2204 host-driver=-\n"));
  EXPECT_FALSE(parse_udev_rule("# vfiokit-persist bdf=0000:01:00.0 id=10de:2204 colour=red\n"));
}

// Found by fuzz/udev_rule.cpp: a host driver with a tab became two words in the softdep file.
TEST(Persist, AHostDriverThatIsNoDriverNameMakesTheRuleDamaged) {
  EXPECT_FALSE(
      parse_udev_rule("# vfiokit-persist bdf=0000:01:00.0 id=10de:2204 host-driver=a\tb\n"));
  EXPECT_FALSE(
      parse_udev_rule("# vfiokit-persist bdf=0000:01:00.0 id=10de:2204 host-driver=a/b\n"));
  EXPECT_FALSE(
      parse_udev_rule("# vfiokit-persist bdf=0000:01:00.0 id=10de:2204 host-driver=\x1b\n"));
  EXPECT_TRUE(parse_udev_rule(
      "# vfiokit-persist bdf=0000:01:00.0 id=10de:2204 host-driver=snd_hda_intel\n"));
}

TEST(Persist, SoftdepsNameEachHostDriverOnce) {
  PersistEntry second_gpu = gpu();
  second_gpu.bdf = *pci::parse_bdf("0000:02:00.0");
  const std::string text = render_softdeps({gpu(), audio(), second_gpu});
  EXPECT_NE(text.find("softdep nouveau pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n"),
            std::string::npos);
  EXPECT_EQ(text.find("nouveau pre"), text.rfind("nouveau pre"));
  EXPECT_EQ(render_softdeps({}), "");
}

TEST(Persist, StoreAddsListsAndRemovesAgainstAFixtureRoot) {
  test::TempDir etc;
  PersistStore store(etc.path());
  const auto written = store.add({gpu(), audio()});
  EXPECT_EQ(written.size(), 3u);
  EXPECT_TRUE(std::filesystem::exists(etc.path() / "udev/rules.d/61-vfiokit-0000:01:00.0.rules"));
  EXPECT_EQ(store.entries(), (std::vector<PersistEntry>{gpu(), audio()}));
  write_file_durable(etc.path() / "udev/rules.d/70-other.rules", "# someone else's\n");
  store.remove({gpu().bdf});
  EXPECT_EQ(store.entries(), std::vector<PersistEntry>{audio()});
  EXPECT_EQ(read_file(store.softdep_path()).find("nouveau"), std::string::npos);
  store.remove({audio().bdf});
  EXPECT_FALSE(std::filesystem::exists(store.softdep_path()));
  EXPECT_TRUE(std::filesystem::exists(etc.path() / "udev/rules.d/70-other.rules"));
}

}  // namespace
}  // namespace vfiokit::bind

namespace vfiokit::bind {
namespace {

PersistPlan persist_plan_of(const HostPaths& paths, const char* device, ForceFlags force = {}) {
  const Journal journal(paths.run / "vfiokit");
  const std::vector<pci::Bdf> requested{*pci::parse_bdf(device)};
  return plan_persist(gather_host_view(paths, requested, journal, 1), requested, force);
}

TEST(PlanPersist, TheWholeGroupButTheBridgeWithTheDriversItLeaves) {
  const PersistPlan planned =
      persist_plan_of(test::fixture_sysfs("gpu-audio-group"), "0000:01:00.0");
  EXPECT_FALSE(planned.plan.refused());
  EXPECT_EQ(planned.entries, (std::vector<PersistEntry>{gpu(), audio()}));
}

TEST(PlanPersist, TheSameRefusalsAsABind) {
  const PersistPlan refused = persist_plan_of(test::fixture_sysfs("boot-vga"), "0000:00:02.0");
  ASSERT_EQ(refused.plan.refusals.size(), 1u);
  EXPECT_EQ(refused.plan.refusals[0].check, Check::boot_vga);
  EXPECT_TRUE(refused.entries.empty());
  ForceFlags force;
  force.boot_vga = true;
  const PersistPlan forced =
      persist_plan_of(test::fixture_sysfs("boot-vga"), "0000:00:02.0", force);
  EXPECT_FALSE(forced.plan.refused());
  ASSERT_EQ(forced.entries.size(), 1u);
  EXPECT_EQ(forced.entries[0].host_driver, "i915");
}

TEST(PlanPersist, AnOpenGroupIsNoReasonToRefuseOrWarn) {
  const PersistPlan planned = persist_plan_of(test::fixture_sysfs("vfio-in-use"), "0000:06:00.0");
  EXPECT_FALSE(planned.plan.refused());
  EXPECT_TRUE(planned.plan.forced.empty());
  ASSERT_EQ(planned.entries.size(), 1u);
  // Already on vfio-pci and not journalled: there is no host driver to load it before.
  EXPECT_FALSE(planned.entries[0].host_driver);
}

TEST(PlanPersist, AJournalledDeviceKeepsTheDriverItCameFrom) {
  test::FixtureCopy copy(test::fixture("sysfs/vfio-in-use"));
  Journal journal(copy.paths().run / "vfiokit");
  journal.record({*pci::parse_bdf("0000:06:00.0"), 11, "nvme", std::nullopt, "vfio-pci",
                  JournalState::bound, 1});
  const PersistPlan planned = persist_plan_of(copy.paths(), "0000:06:00.0");
  ASSERT_EQ(planned.entries.size(), 1u);
  EXPECT_EQ(planned.entries[0].host_driver, "nvme");
  EXPECT_EQ(planned.entries[0].vendor_id, 0x1b36);
}

}  // namespace
}  // namespace vfiokit::bind
