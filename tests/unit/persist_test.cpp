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

// edu on the arm64 rig has no IOMMU group until a driver probes it: bind can learn it, a boot
// configuration cannot, so persist refuses and says to bind first.
TEST(PlanPersist, ADeviceWithoutAGroupYetIsRefusedWithBindFirstAsTheFix) {
  const PersistPlan refused = persist_plan_of(test::fixture_host("arm64-rig"), "0000:00:01.0");
  ASSERT_EQ(refused.plan.refusals.size(), 1u);
  EXPECT_EQ(refused.plan.refusals[0].check, Check::iommu);
  EXPECT_NE(refused.plan.refusals[0].reason.find("`vfiokit bind 0000:00:01.0` first"),
            std::string::npos);
  EXPECT_TRUE(refused.entries.empty());
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

namespace vfiokit::bind {
namespace {

PersistEntry persisted(const char* bdf, std::uint16_t vendor, std::uint16_t device,
                       const char* driver) {
  return {*pci::parse_bdf(bdf), vendor, device, std::string(driver)};
}

// tests/fixtures/sysfs/boot-apply: what vfiokit.service finds in five persisted slots.
std::vector<PersistEntry> boot_apply_entries() {
  return {persisted("0000:03:00.0", 0x1b36, 0x0010, "nvme"),
          persisted("0000:04:00.0", 0x8086, 0x10d3, "e1000e"),
          persisted("0000:05:00.0", 0x1b36, 0x0010, "nvme"),
          persisted("0000:07:00.0", 0x1b36, 0x0010, "nvme"),
          persisted("0000:09:00.0", 0x1b36, 0x0010, "nvme")};
}

TEST(BootApply, ReadsWhatIsInEachSlotAndWhetherItsDriverIsBuiltIn) {
  const auto entries = boot_apply_entries();
  const auto slots = read_slots(test::fixture_sysfs("boot-apply"), entries);
  ASSERT_EQ(slots.size(), 4u);  // 0000:09:00.0 is empty
  EXPECT_EQ(slots.at(entries[0].bdf), (SlotNow{0x1b36, 0x0010, "nvme", false}));
  EXPECT_EQ(slots.at(entries[1].bdf), (SlotNow{0x8086, 0x10d3, "e1000e", true}));
  EXPECT_EQ(slots.at(entries[2].bdf), (SlotNow{0x1b36, 0x0010, "vfio-pci", false}));
  EXPECT_EQ(slots.at(entries[3].bdf), (SlotNow{0x1234, 0x11e8, std::nullopt, false}));
}

TEST(BootApply, BindsWhatAHostDriverTookAndLeavesTheRest) {
  const auto entries = boot_apply_entries();
  const auto decisions =
      decide_boot_apply(entries, read_slots(test::fixture_sysfs("boot-apply"), entries));
  ASSERT_EQ(decisions.size(), 5u);
  const std::vector<BootAction> expected{BootAction::bind, BootAction::bind, BootAction::already,
                                         BootAction::other_card, BootAction::absent};
  for (std::size_t i = 0; i < decisions.size(); ++i) {
    SCOPED_TRACE(entries[i].bdf.to_string());
    EXPECT_EQ(decisions[i].entry, entries[i]);
    EXPECT_EQ(decisions[i].action, expected[i]) << decisions[i].reason;
  }
  EXPECT_EQ(decisions[0].reason, "bound to nvme (loaded before vfio-pci could claim it)");
  EXPECT_EQ(decisions[1].reason, "bound to e1000e (built into the kernel)");
  EXPECT_EQ(decisions[2].reason, "on vfio-pci");
  EXPECT_EQ(decisions[3].reason,
            "persisted for 1b36:0010, but 1234:11e8 is in the slot: left alone");
  EXPECT_EQ(decisions[4].reason, "no device at this address");
}

TEST(BootApply, ADeviceNoDriverTookIsBoundToo) {
  // The rule set driver_override, but vfio-pci never loaded (its host driver is built in and
  // nothing pulled the softdep): only the boot-time bind brings it to vfio-pci.
  const PersistEntry entry = persisted("0000:03:00.0", 0x1b36, 0x0010, "nvme");
  const auto decisions =
      decide_boot_apply(std::vector{entry}, {{entry.bdf, SlotNow{0x1b36, 0x0010, {}, false}}});
  ASSERT_EQ(decisions.size(), 1u);
  EXPECT_EQ(decisions[0].action, BootAction::bind);
  EXPECT_EQ(decisions[0].reason, "no driver bound");
  EXPECT_TRUE(decide_boot_apply({}, {}).empty());
}

TEST(BootApply, ActionNamesAreTheOnesJsonShows) {
  EXPECT_EQ(to_string(BootAction::bind), "bind");
  EXPECT_EQ(to_string(BootAction::already), "already");
  EXPECT_EQ(to_string(BootAction::absent), "absent");
  EXPECT_EQ(to_string(BootAction::other_card), "other-card");
}

TEST(Persist, TheInitramfsGeneratorIsTheOneConfiguredUnderEtc) {
  test::TempDir etc;
  EXPECT_FALSE(detect_initramfs_generator(etc.path()));
  write_file_durable(etc.path() / "dracut.conf", "");
  EXPECT_EQ(detect_initramfs_generator(etc.path()),
            (InitramfsGenerator{"dracut", "dracut --regenerate-all --force"}));
  std::filesystem::create_directories(etc.path() / "initramfs-tools");
  write_file_durable(etc.path() / "initramfs-tools/initramfs.conf", "MODULES=most\n");
  EXPECT_EQ(detect_initramfs_generator(etc.path()),
            (InitramfsGenerator{"initramfs-tools", "update-initramfs -u -k all"}));
}

TEST(Persist, WhatADryRunWouldChangeIsListedWithoutTouchingAnything) {
  test::TempDir etc;
  PersistStore store(etc.path());
  EXPECT_EQ(store.files_for_add({gpu(), audio()}),
            (std::vector<std::filesystem::path>{
                store.rule_path(gpu().bdf), store.rule_path(audio().bdf), store.softdep_path()}));
  EXPECT_TRUE(store.files_for_remove({gpu().bdf}).empty());
  EXPECT_FALSE(std::filesystem::exists(etc.path() / "udev"));
  EXPECT_FALSE(std::filesystem::exists(store.softdep_path()));
  store.add({gpu()});
  EXPECT_EQ(store.files_for_remove({gpu().bdf, audio().bdf}),
            (std::vector<std::filesystem::path>{store.rule_path(gpu().bdf), store.softdep_path()}));
  EXPECT_EQ(store.entries(), std::vector<PersistEntry>{gpu()});
}

}  // namespace
}  // namespace vfiokit::bind
