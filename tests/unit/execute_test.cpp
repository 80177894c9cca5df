// bind, unbind, rollback and restore against the fake kernel: the exact order of sysfs writes,
// a failure injected at every single write, and a process that dies mid-bind.
#include "vfiokit/bind/execute.h"

#include <gtest/gtest.h>
#include <signal.h>

#include "tests/unit/fake_kernel.h"
#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::bind {
namespace {

using Write = test::FakeKernel::Write;

pci::Bdf bdf(const char* text) { return *pci::parse_bdf(text); }

struct Rig {
  explicit Rig(const char* fixture) : Rig(test::fixture("sysfs") / fixture) {}
  explicit Rig(const std::filesystem::path& tree)
      : copy(tree), paths(copy.paths()), kernel(paths), journal(paths.run / "vfiokit") {
    options.pid = 777;
    options.probe_retry_delay = std::chrono::milliseconds(0);
  }
  Plan plan_bind_of(std::vector<pci::Bdf> requested, ForceFlags force = {}) {
    return bind::plan_bind(gather_host_view(paths, requested, journal, 1), requested, force);
  }
  Plan plan_unbind_of(std::vector<pci::Bdf> requested) {
    return bind::plan_unbind(gather_host_view(paths, requested, journal, 1), requested, {});
  }
  std::optional<std::string> driver(const char* device) {
    return pci::read_driver(paths, bdf(device));
  }
  std::optional<std::string> override_of(const char* device) {
    return pci::read_driver_override(paths, bdf(device));
  }
  bool group_node(unsigned group) {
    return std::filesystem::exists(paths.dev / "vfio" / std::to_string(group));
  }

  test::FixtureCopy copy;
  HostPaths paths;
  test::FakeKernel kernel;
  Journal journal;
  ExecuteOptions options;
};

TEST(ExecuteBind, NvmeGoesOverridenUnboundProbedInThatOrder) {
  Rig rig("rig");
  const auto result = execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:00:02.0")}), rig.kernel,
                                   rig.journal, rig.options);
  EXPECT_EQ(rig.kernel.writes, (std::vector<Write>{
                                   {"bus/pci/devices/0000:00:02.0/driver_override", "vfio-pci"},
                                   {"bus/pci/drivers/nvme/unbind", "0000:00:02.0"},
                                   {"bus/pci/drivers_probe", "0000:00:02.0"},
                               }));
  EXPECT_EQ(rig.driver("0000:00:02.0"), "vfio-pci");
  EXPECT_EQ(rig.override_of("0000:00:02.0"), "vfio-pci");  // kept, so a re-probe keeps it
  EXPECT_TRUE(rig.group_node(2));
  EXPECT_EQ(result.groups, std::vector<unsigned>{2});
  const auto entry = rig.journal.find(bdf("0000:00:02.0"));
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->state, JournalState::bound);
  EXPECT_EQ(entry->original_driver, "nvme");
  EXPECT_FALSE(entry->original_override);
  EXPECT_EQ(entry->pid, 777);
  EXPECT_TRUE(rig.kernel.modules_loaded.empty());  // vfio-pci was registered in the rig
}

TEST(ExecuteBind, AnUnboundDeviceIsOnlyOverriddenAndProbed) {
  Rig rig("rig");
  execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:00:01.0")}), rig.kernel, rig.journal,
               rig.options);
  EXPECT_EQ(rig.kernel.writes, (std::vector<Write>{
                                   {"bus/pci/devices/0000:00:01.0/driver_override", "vfio-pci"},
                                   {"bus/pci/drivers_probe", "0000:00:01.0"},
                               }));
  EXPECT_EQ(rig.driver("0000:00:01.0"), "vfio-pci");
}

TEST(ExecuteBind, LoadsVfioPciThenMovesTheWholeGroupAndAppliesTheOwner) {
  Rig rig("gpu-audio-group");
  rig.options.owner = Owner{1000, 1001};
  execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:01:00.0")}), rig.kernel, rig.journal,
               rig.options);
  EXPECT_EQ(rig.kernel.modules_loaded, std::vector<std::string>{"vfio-pci"});
  EXPECT_EQ(rig.kernel.writes, (std::vector<Write>{
                                   {"bus/pci/devices/0000:01:00.0/driver_override", "vfio-pci"},
                                   {"bus/pci/drivers/nouveau/unbind", "0000:01:00.0"},
                                   {"bus/pci/drivers_probe", "0000:01:00.0"},
                                   {"bus/pci/devices/0000:01:00.1/driver_override", "vfio-pci"},
                                   {"bus/pci/drivers/snd_hda_intel/unbind", "0000:01:00.1"},
                                   {"bus/pci/drivers_probe", "0000:01:00.1"},
                               }));
  EXPECT_EQ(rig.driver("0000:00:01.0"), "pcieport");
  EXPECT_EQ(rig.kernel.owners_set, std::vector<std::string>{"vfio/1 1000:1001"});
}

// The arm64 rig as captured (tests/fixtures/hosts/arm64-rig): a device-tree host with an SMMUv3,
// where edu (00:01.0, no host driver) has no IOMMU group until a driver probes it; nvme (00:02.0)
// is in group 0, e1000e (00:03.0) in group 1.
constexpr const char* kArm64Edu = "0000:00:01.0";

TEST(ExecuteBind, AGrouplessDeviceOnADeviceTreeHostJoinsItsGroupOnTheProbeAndGetsItsNode) {
  Rig rig(test::fixture("hosts/arm64-rig"));
  rig.kernel.group_on_probe[kArm64Edu] = 2;
  const Plan plan = rig.plan_bind_of({bdf(kArm64Edu)});
  ASSERT_FALSE(plan.refused());
  ASSERT_EQ(plan.devices.size(), 1u);
  EXPECT_TRUE(plan.devices[0].learns_group);
  EXPECT_FALSE(plan.devices[0].group);
  const auto result = execute_bind(rig.paths, plan, rig.kernel, rig.journal, rig.options);
  EXPECT_EQ(rig.kernel.writes, (std::vector<Write>{
                                   {"bus/pci/devices/0000:00:01.0/driver_override", "vfio-pci"},
                                   {"bus/pci/drivers_probe", "0000:00:01.0"},
                               }));
  EXPECT_EQ(rig.driver(kArm64Edu), "vfio-pci");
  EXPECT_TRUE(rig.group_node(2));
  EXPECT_EQ(result.groups, std::vector<unsigned>{2});
  ASSERT_EQ(result.devices.size(), 1u);
  EXPECT_EQ(result.devices[0].detail,
            "moved no driver -> vfio-pci (joined IOMMU group 2 on the probe)");
  const auto entry = rig.journal.find(bdf(kArm64Edu));
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->group, 2u);
  EXPECT_EQ(entry->state, JournalState::bound);
  EXPECT_FALSE(entry->original_driver);

  // Unbind takes it back to no driver, and its group stays (the kernel keeps it until removal).
  rig.kernel.writes.clear();
  execute_homecoming(rig.paths, rig.plan_unbind_of({bdf(kArm64Edu)}), rig.kernel, rig.journal,
                     rig.options);
  EXPECT_FALSE(rig.driver(kArm64Edu));
  EXPECT_FALSE(rig.override_of(kArm64Edu));
  EXPECT_FALSE(rig.group_node(2));
  EXPECT_TRUE(rig.journal.entries().empty());
}

TEST(ExecuteBind, AGroupJoinedWithADeviceThisBindDoesNotMoveIsRolledBackAndNamed) {
  Rig rig(test::fixture("hosts/arm64-rig"));
  rig.kernel.group_on_probe[kArm64Edu] = 0;  // nvme's group
  try {
    execute_bind(rig.paths, rig.plan_bind_of({bdf(kArm64Edu)}), rig.kernel, rig.journal,
                 rig.options);
    FAIL() << "a group shared with nvme on its host driver was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("joined IOMMU group 0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("0000:00:02.0 (on nvme)"), std::string::npos) << e.what();
    EXPECT_EQ(e.hint(), "bind the whole group at once: vfiokit bind 0000:00:01.0 0000:00:02.0");
  }
  EXPECT_FALSE(rig.driver(kArm64Edu));
  EXPECT_FALSE(rig.override_of(kArm64Edu));
  EXPECT_EQ(rig.driver("0000:00:02.0"), "nvme");
  EXPECT_FALSE(rig.group_node(0));
  EXPECT_TRUE(rig.journal.entries().empty());
}

TEST(ExecuteBind, ADeviceStillWithoutAGroupOnVfioPciIsRolledBack) {
  Rig rig(test::fixture("hosts/arm64-rig"));  // no group_on_probe: the IOMMU does not cover it
  try {
    execute_bind(rig.paths, rig.plan_bind_of({bdf(kArm64Edu)}), rig.kernel, rig.journal,
                 rig.options);
    FAIL() << "a device with no group on vfio-pci was left there";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no IOMMU group even on vfio-pci"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(rig.driver(kArm64Edu));
  EXPECT_FALSE(rig.override_of(kArm64Edu));
  EXPECT_TRUE(rig.journal.entries().empty());
}

TEST(ExecuteUnbind, GoesBackToTheJournalledDriverAndForgetsTheEntry) {
  Rig rig("gpu-audio-group");
  execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:01:00.0")}), rig.kernel, rig.journal,
               rig.options);
  rig.kernel.writes.clear();
  const auto result = execute_homecoming(rig.paths, rig.plan_unbind_of({bdf("0000:01:00.0")}),
                                         rig.kernel, rig.journal, rig.options);
  EXPECT_EQ(rig.kernel.writes, (std::vector<Write>{
                                   {"bus/pci/devices/0000:01:00.0/driver_override", "\n"},
                                   {"bus/pci/drivers/vfio-pci/unbind", "0000:01:00.0"},
                                   {"bus/pci/drivers/nouveau/bind", "0000:01:00.0"},
                                   {"bus/pci/devices/0000:01:00.1/driver_override", "\n"},
                                   {"bus/pci/drivers/vfio-pci/unbind", "0000:01:00.1"},
                                   {"bus/pci/drivers/snd_hda_intel/bind", "0000:01:00.1"},
                               }));
  EXPECT_EQ(rig.driver("0000:01:00.0"), "nouveau");
  EXPECT_EQ(rig.driver("0000:01:00.1"), "snd_hda_intel");
  EXPECT_FALSE(rig.override_of("0000:01:00.0"));
  EXPECT_FALSE(rig.group_node(1));
  EXPECT_TRUE(rig.journal.entries().empty());
  ASSERT_EQ(result.devices.size(), 3u);
  EXPECT_EQ(result.devices[0].detail, "back on nouveau");
}

TEST(ExecuteUnbind, WithoutAJournalTheDefaultDriverComesBackThroughDriversProbe) {
  Rig rig("vfio-in-use");
  ForceFlags force;
  force.group_in_use = true;
  const std::vector<pci::Bdf> requested{bdf("0000:06:00.0")};
  const Plan plan =
      plan_unbind(gather_host_view(rig.paths, requested, rig.journal, 1), requested, force);
  execute_homecoming(rig.paths, plan, rig.kernel, rig.journal, rig.options);
  EXPECT_EQ(rig.kernel.writes, (std::vector<Write>{
                                   {"bus/pci/devices/0000:06:00.0/driver_override", "\n"},
                                   {"bus/pci/drivers/vfio-pci/unbind", "0000:06:00.0"},
                                   {"bus/pci/drivers_probe", "0000:06:00.0"},
                               }));
}

// Every write of a two-device bind fails once, in turn; each time every device must end where
// it started, with its override, and the journal must be empty.
TEST(ExecuteBind, AFailureAtEveryWriteRollsEverythingBack) {
  std::size_t total_writes;
  {
    Rig probe("gpu-audio-group");
    execute_bind(probe.paths, probe.plan_bind_of({bdf("0000:01:00.0")}), probe.kernel,
                 probe.journal, probe.options);
    total_writes = probe.kernel.writes.size();
  }
  ASSERT_EQ(total_writes, 6u);
  for (std::size_t failing = 0; failing < total_writes; ++failing) {
    SCOPED_TRACE("failing write " + std::to_string(failing));
    Rig rig("gpu-audio-group");
    rig.kernel.fail_write_at = failing;
    rig.kernel.fail_errno = EBUSY;
    try {
      execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:01:00.0")}), rig.kernel, rig.journal,
                   rig.options);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.errno_value(), EBUSY);
      EXPECT_NE(e.context_value("0000:01:00.0"), "");  // the outcome of each touched device
      EXPECT_EQ(e.context_value("0000:01:00.0").find("rollback FAILED"), std::string::npos);
    }
    EXPECT_EQ(rig.driver("0000:01:00.0"), "nouveau");
    EXPECT_EQ(rig.driver("0000:01:00.1"), "snd_hda_intel");
    EXPECT_EQ(rig.driver("0000:00:01.0"), "pcieport");
    EXPECT_FALSE(rig.override_of("0000:01:00.0"));
    EXPECT_FALSE(rig.override_of("0000:01:00.1"));
    EXPECT_FALSE(rig.group_node(1));
    EXPECT_TRUE(rig.journal.entries().empty());
  }
}

TEST(ExecuteBind, AProbeThatNeverBindsIsRetriedThenRolledBack) {
  Rig rig("rig");
  rig.kernel.refusing_drivers = {"vfio-pci"};
  rig.options.probe_attempts = 3;
  try {
    execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:00:02.0")}), rig.kernel, rig.journal,
                 rig.options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no driver after 3 drivers_probe attempts"),
              std::string::npos);
    EXPECT_EQ(e.context_value("0000:00:02.0"), "rolled back: back on nvme");
  }
  EXPECT_EQ(rig.kernel.sleeps, 2);
  EXPECT_EQ(rig.driver("0000:00:02.0"), "nvme");
  EXPECT_TRUE(rig.journal.entries().empty());
}

// What kill -9 leaves: the step hook throws something that is not a vfiokit::Error, so no
// rollback runs, exactly as if the process had died there. Then restore brings everyone home.
struct Killed {};

TEST(ExecuteRestore, AfterDyingAtEveryStepRestoreBringsEveryDeviceHome) {
  const std::vector<std::string> steps = {"journal", "override", "unbind", "probe", "verify"};
  for (const auto& stop_step : steps) {
    for (const char* stop_device : {"0000:01:00.0", "0000:01:00.1"}) {
      SCOPED_TRACE(stop_step + "@" + stop_device);
      Rig rig("gpu-audio-group");
      rig.options.on_step = [&](std::string_view step, const pci::Bdf& at) {
        if (step == stop_step && at.to_string() == stop_device) throw Killed{};
      };
      EXPECT_THROW(execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:01:00.0")}), rig.kernel,
                                rig.journal, rig.options),
                   Killed);
      rig.options.on_step = nullptr;
      std::vector<pci::Bdf> journalled;
      for (const auto& entry : rig.journal.entries()) journalled.push_back(entry.bdf);
      const Plan plan =
          plan_restore(gather_host_view(rig.paths, journalled, rig.journal, 1), journalled, {});
      execute_homecoming(rig.paths, plan, rig.kernel, rig.journal, rig.options);
      EXPECT_EQ(rig.driver("0000:01:00.0"), "nouveau");
      EXPECT_EQ(rig.driver("0000:01:00.1"), "snd_hda_intel");
      EXPECT_FALSE(rig.override_of("0000:01:00.0"));
      EXPECT_FALSE(rig.override_of("0000:01:00.1"));
      EXPECT_TRUE(rig.journal.entries().empty());
    }
  }
}

TEST(ExecuteBind, ASecondBindAfterACrashKeepsTheRecordedOriginalDriver) {
  Rig rig("rig");
  rig.options.on_step = [](std::string_view step, const pci::Bdf&) {
    if (step == "probe") throw Killed{};  // unbound from nvme, not yet on vfio-pci
  };
  EXPECT_THROW(execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:00:02.0")}), rig.kernel,
                            rig.journal, rig.options),
               Killed);
  EXPECT_FALSE(rig.driver("0000:00:02.0"));
  rig.options.on_step = nullptr;
  execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:00:02.0")}), rig.kernel, rig.journal,
               rig.options);
  EXPECT_EQ(rig.driver("0000:00:02.0"), "vfio-pci");
  EXPECT_EQ(rig.journal.find(bdf("0000:00:02.0"))->original_driver, "nvme");
  execute_homecoming(rig.paths, rig.plan_unbind_of({bdf("0000:00:02.0")}), rig.kernel, rig.journal,
                     rig.options);
  EXPECT_EQ(rig.driver("0000:00:02.0"), "nvme");
}

TEST(ExecuteRestore, AFailedHomecomingKeepsTheJournalAndSaysSo) {
  Rig rig("rig");
  execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:00:02.0")}), rig.kernel, rig.journal,
               rig.options);
  rig.kernel.fail_write_at = rig.kernel.writes.size() + 1;  // the unbind from vfio-pci
  try {
    execute_homecoming(rig.paths, rig.plan_unbind_of({bdf("0000:00:02.0")}), rig.kernel,
                       rig.journal, rig.options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.context_value("0000:00:02.0")).find("FAILED"), std::string::npos);
    EXPECT_NE(e.hint().find("restore --all"), std::string::npos);
  }
  EXPECT_TRUE(rig.journal.find(bdf("0000:00:02.0")));
  rig.kernel.fail_write_at.reset();
  std::vector<pci::Bdf> journalled{bdf("0000:00:02.0")};
  execute_homecoming(
      rig.paths,
      plan_restore(gather_host_view(rig.paths, journalled, rig.journal, 1), journalled, {}),
      rig.kernel, rig.journal, rig.options);
  EXPECT_EQ(rig.driver("0000:00:02.0"), "nvme");
  EXPECT_TRUE(rig.journal.entries().empty());
}

TEST(ExecuteRestore, ADamagedEntryDoesNotKeepTheOtherDevicesFromComingHome) {
  Rig rig("gpu-audio-group");
  rig.options.on_step = [](std::string_view step, const pci::Bdf& at) {
    if (step == "verify" && at.to_string() == "0000:01:00.1") throw Killed{};
  };
  EXPECT_THROW(execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:01:00.0")}), rig.kernel,
                            rig.journal, rig.options),
               Killed);
  rig.options.on_step = nullptr;
  write_file_durable(rig.paths.run / "vfiokit/devices/0000:01:00.1", "vfiokit-journal 1\nbd");
  const RestoreSelection selection = select_for_restore(rig.paths, rig.journal, {});
  ASSERT_EQ(selection.devices, std::vector<pci::Bdf>{bdf("0000:01:00.0")});
  ASSERT_EQ(selection.left.size(), 1u);
  const Plan plan = plan_restore(gather_host_view(rig.paths, selection.devices, rig.journal, 1),
                                 selection.devices, {});
  execute_homecoming(rig.paths, plan, rig.kernel, rig.journal, rig.options);
  EXPECT_EQ(rig.driver("0000:01:00.0"), "nouveau");
  EXPECT_FALSE(rig.override_of("0000:01:00.0"));
  EXPECT_EQ(rig.journal.scan().problems.size(), 1u);  // kept, for the user to look at
  EXPECT_TRUE(rig.journal.scan().entries.empty());
}

// SIGINT, SIGTERM or SIGHUP at any step of a bind: it goes no further, and every device it
// touched goes home.
TEST(ExecuteBind, ASignalAtAnyStepStopsTheBindAndTakesEveryDeviceHome) {
  const std::vector<std::string> steps = {"journal", "override", "unbind", "probe", "verify"};
  for (const auto& signal_step : steps) {
    for (const char* signal_device : {"0000:01:00.0", "0000:01:00.1"}) {
      SCOPED_TRACE(signal_step + "@" + signal_device);
      Rig rig("gpu-audio-group");
      int signal = 0;
      rig.options.interrupted = [&] { return signal; };
      rig.options.on_step = [&](std::string_view step, const pci::Bdf& at) {
        if (step == signal_step && at.to_string() == signal_device) signal = SIGINT;
      };
      try {
        execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:01:00.0")}), rig.kernel, rig.journal,
                     rig.options);
        FAIL() << "the bind went on";
      } catch (const Error& e) {
        EXPECT_EQ(e.message(), "stopped by SIGINT before it finished");
        EXPECT_EQ(e.context_value("signal"), "SIGINT");
        EXPECT_NE(e.context_value("0000:01:00.0"), "");  // what happened to each device
        EXPECT_NE(e.context_value("0000:01:00.1"), "");
        EXPECT_TRUE(e.hint().empty()) << e.hint();  // nothing left to restore
      }
      EXPECT_EQ(rig.driver("0000:01:00.0"), "nouveau");
      EXPECT_EQ(rig.driver("0000:01:00.1"), "snd_hda_intel");
      EXPECT_FALSE(rig.override_of("0000:01:00.0"));
      EXPECT_FALSE(rig.override_of("0000:01:00.1"));
      EXPECT_FALSE(rig.group_node(1));
      EXPECT_TRUE(rig.journal.entries().empty());
    }
  }
}

TEST(ExecuteUnbind, ASignalDoesNotStopAHomecoming) {
  Rig rig("gpu-audio-group");
  execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:01:00.0")}), rig.kernel, rig.journal,
               rig.options);
  rig.options.interrupted = [] { return SIGTERM; };
  const auto result = execute_homecoming(rig.paths, rig.plan_unbind_of({bdf("0000:01:00.0")}),
                                         rig.kernel, rig.journal, rig.options);
  EXPECT_EQ(rig.driver("0000:01:00.0"), "nouveau");
  EXPECT_EQ(rig.driver("0000:01:00.1"), "snd_hda_intel");
  EXPECT_TRUE(rig.journal.entries().empty());
  EXPECT_EQ(result.devices.size(), 3u);
}

TEST(ExecuteBind, ARefusedPlanIsNeverExecuted) {
  Rig rig("boot-vga");
  EXPECT_THROW(execute_bind(rig.paths, rig.plan_bind_of({bdf("0000:00:02.0")}), rig.kernel,
                            rig.journal, rig.options),
               Error);
  EXPECT_TRUE(rig.kernel.writes.empty());
  EXPECT_TRUE(rig.journal.entries().empty());
}

}  // namespace
}  // namespace vfiokit::bind
