// vfiokit bind, unbind and restore on the rig's real kernel: nvme leaves its driver for
// vfio-pci and comes back, edu binds, a mounted disk and an open group (or a device fd kept
// after the group was closed) are refused, a bind killed midway is restored, a signal midway
// rolls a bind back and lets an unbind finish, and two binds at once take turns.
#include <fcntl.h>
#include <linux/vfio.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <thread>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/signals.h"
#include "vfiokit/base/unique_fd.h"

namespace vfiokit::hil {
namespace {

class Binding : public RigDeviceTest {
 protected:
  void SetUp() override {
    RigDeviceTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    nvme_group_ = read_link_name("/sys/bus/pci/devices/" + nvme_ + "/iommu_group").value_or("?");
  }
  // Read when asked: on a device-tree host (the arm64 rig) edu has no group until a driver has
  // probed it, so before the first bind of a boot there is none to read.
  [[nodiscard]] std::string edu_group() const {
    return read_link_name("/sys/bus/pci/devices/" + edu_ + "/iommu_group").value_or("?");
  }
  std::string nvme_group_;
};

TEST_F(Binding, NvmeMovesToVfioPciAndBackWithItsDisk) {
  ASSERT_TRUE(std::filesystem::exists("/dev/nvme0n1"));
  const auto bind = vfiokit({"bind", nvme_, "--json"});
  ASSERT_EQ(bind.exit_status, 0) << bind.output;
  const auto document = conforming_json(bind, "bind.json");
  EXPECT_EQ(document["vfio_groups"][0], "/dev/vfio/" + nvme_group_);
  EXPECT_EQ(driver_of(nvme_), "vfio-pci");
  EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + nvme_ + "/driver_override"), "vfio-pci");
  EXPECT_TRUE(std::filesystem::exists("/dev/vfio/" + nvme_group_));
  EXPECT_TRUE(wait_for_path("/dev/nvme0n1", false, 2000)) << "the disk outlived its driver";
  EXPECT_TRUE(std::filesystem::exists("/run/vfiokit/devices/" + nvme_));

  const auto unbind = vfiokit({"unbind", nvme_, "--json"});
  ASSERT_EQ(unbind.exit_status, 0) << unbind.output;
  EXPECT_EQ(conforming_json(unbind, "unbind.json")["result"][0]["ok"], true);
  EXPECT_EQ(driver_of(nvme_), "nvme");
  EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + nvme_ + "/driver_override"), "(null)");
  EXPECT_TRUE(wait_for_path("/dev/nvme0n1", true, 5000)) << "the nvme driver did not come back";
  EXPECT_FALSE(std::filesystem::exists("/dev/vfio/" + nvme_group_));
  EXPECT_FALSE(std::filesystem::exists("/run/vfiokit/devices/" + nvme_));
}

TEST_F(Binding, EduBindsWithAnOwnerAndUnbindsToNoDriver) {
  const auto bind = vfiokit({"bind", edu_, "--owner", "1234:4321"});
  ASSERT_EQ(bind.exit_status, 0) << bind.output;
  EXPECT_EQ(driver_of(edu_), "vfio-pci");
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/vfio/" + edu_group()).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 4321u);
  const auto unbind = vfiokit({"unbind", edu_});
  ASSERT_EQ(unbind.exit_status, 0) << unbind.output;
  EXPECT_EQ(driver_of(edu_), "(none)");  // edu has no host driver: it goes back to none
}

TEST_F(Binding, AMountedDiskIsRefusedWithExitThreeAndNothingChanges) {
  ASSERT_EQ(run_command({"mke2fs", "-q", "-F", "/dev/nvme0n1"}).exit_status, 0);
  std::filesystem::create_directories("/mnt/scratch");
  ASSERT_EQ(::mount("/dev/nvme0n1", "/mnt/scratch", "ext2", 0, nullptr), 0) << strerror(errno);
  const auto bind = vfiokit({"bind", nvme_});
  ::umount("/mnt/scratch");
  EXPECT_EQ(bind.exit_status, 3) << bind.output;
  EXPECT_NE(bind.output.find("block device nvme0n1 is mounted on /mnt/scratch"), std::string::npos)
      << bind.output;
  EXPECT_NE(bind.output.find("--force-block"), std::string::npos);
  EXPECT_EQ(driver_of(nvme_), "nvme");
  EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + nvme_ + "/driver_override"), "(null)");
  EXPECT_FALSE(std::filesystem::exists("/run/vfiokit/devices/" + nvme_));
}

TEST_F(Binding, AnOpenGroupIsNotUnboundFromUnderItsUser) {
  ASSERT_EQ(vfiokit({"bind", edu_}).exit_status, 0);
  {
    UniqueFd group(::open(("/dev/vfio/" + edu_group()).c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(group) << strerror(errno);
    const auto unbind = vfiokit({"unbind", edu_});
    EXPECT_EQ(unbind.exit_status, 3) << unbind.output;
    EXPECT_NE(unbind.output.find("/dev/vfio/" + edu_group() + " (vfiokit_hil_tes"),
              std::string::npos)
        << unbind.output;
    EXPECT_EQ(driver_of(edu_), "vfio-pci");
  }
  EXPECT_EQ(vfiokit({"unbind", edu_}).exit_status, 0);
}

TEST_F(Binding, ABindKilledMidwayIsRestored) {
  for (const char* step : {"unbind", "probe"}) {
    SCOPED_TRACE(step);
    ChildProcess bind =
        spawn_background({"vfiokit", "bind", nvme_}, {std::string("VFIOKIT_DEBUG_STOP_AT=") + step},
                         "/tmp/killed-bind.log");
    ASSERT_TRUE(wait_until_stopped(bind.pid(), 20000)) << read_file("/tmp/killed-bind.log");
    bind.kill(SIGKILL);
    EXPECT_EQ(bind.wait().value(), 128 + SIGKILL);
    // Killed after the override was written: the device is no longer simply on nvme.
    EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + nvme_ + "/driver_override"),
              "vfio-pci");
    EXPECT_TRUE(std::filesystem::exists("/run/vfiokit/devices/" + nvme_));
    const auto restore = vfiokit({"restore", "--all"});
    ASSERT_EQ(restore.exit_status, 0) << restore.output;
    EXPECT_EQ(driver_of(nvme_), "nvme");
    EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + nvme_ + "/driver_override"), "(null)");
    EXPECT_TRUE(wait_for_path("/dev/nvme0n1", true, 5000));
    EXPECT_FALSE(std::filesystem::exists("/run/vfiokit/devices/" + nvme_));
  }
}

TEST_F(Binding, TwoBindsAtOnceTakeTurns) {
  // The first bind stops while it holds the lock.
  ChildProcess first = spawn_background({"vfiokit", "bind", edu_},
                                        {"VFIOKIT_DEBUG_STOP_AT=override"}, "/tmp/first-bind.log");
  ASSERT_TRUE(wait_until_stopped(first.pid(), 20000)) << read_file("/tmp/first-bind.log");
  const auto impatient = vfiokit({"bind", nvme_, "--wait", "0"});
  EXPECT_EQ(impatient.exit_status, 1);
  EXPECT_NE(
      impatient.output.find("another vfiokit process (pid " + std::to_string(first.pid()) + ")"),
      std::string::npos)
      << impatient.output;
  EXPECT_EQ(driver_of(nvme_), "nvme");
  ChildProcess second =
      spawn_background({"vfiokit", "bind", nvme_, "--wait", "60"}, {}, "/tmp/second-bind.log");
  ASSERT_TRUE(wait_for_path("/tmp/second-bind.log", true, 5000));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(driver_of(nvme_), "nvme") << "the second bind did not wait for the first";
  first.kill(SIGCONT);
  EXPECT_EQ(first.wait().value(), 0) << read_file("/tmp/first-bind.log");
  EXPECT_EQ(second.wait().value(), 0) << read_file("/tmp/second-bind.log");
  EXPECT_NE(read_file("/tmp/second-bind.log").find("waiting for another vfiokit process"),
            std::string::npos);
  EXPECT_EQ(driver_of(edu_), "vfio-pci");
  EXPECT_EQ(driver_of(nvme_), "vfio-pci");
}

// Ctrl-C, SIGTERM or SIGHUP in the middle of a bind: at "probe" nvme has just been unbound and
// has no driver at all. vfiokit must roll back, not die there.
TEST_F(Binding, ASignalMidwayThroughABindLeavesEveryDeviceOnADriver) {
  for (const auto& [step, signal] : {std::pair{"probe", SIGINT}, std::pair{"unbind", SIGHUP}}) {
    SCOPED_TRACE(step);
    ChildProcess bind =
        spawn_background({"vfiokit", "bind", nvme_}, {std::string("VFIOKIT_DEBUG_STOP_AT=") + step},
                         "/tmp/signalled-bind.log");
    ASSERT_TRUE(wait_until_stopped(bind.pid(), 20000)) << read_file("/tmp/signalled-bind.log");
    if (std::string(step) == "probe") {
      EXPECT_EQ(driver_of(nvme_), "(none)");  // unbound from nvme, not yet on vfio-pci
    }
    bind.kill(signal);
    bind.kill(SIGCONT);
    EXPECT_EQ(bind.wait().value(), 128 + signal) << read_file("/tmp/signalled-bind.log");
    const std::string log = read_file("/tmp/signalled-bind.log");
    EXPECT_NE(log.find("stopped by " + signal_name(signal)), std::string::npos) << log;
    EXPECT_NE(log.find(nvme_ + "=rolled back: back on nvme"), std::string::npos) << log;
    EXPECT_EQ(driver_of(nvme_), "nvme");
    EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + nvme_ + "/driver_override"), "(null)");
    EXPECT_FALSE(std::filesystem::exists("/run/vfiokit/devices/" + nvme_));
    EXPECT_TRUE(wait_for_path("/dev/nvme0n1", true, 5000));
  }
}

TEST_F(Binding, ASignalDuringAnUnbindLetsItFinish) {
  ASSERT_EQ(vfiokit({"bind", nvme_}).exit_status, 0);
  ChildProcess unbind = spawn_background({"vfiokit", "unbind", nvme_},
                                         {"VFIOKIT_DEBUG_STOP_AT=unbind"}, "/tmp/unbind.log");
  ASSERT_TRUE(wait_until_stopped(unbind.pid(), 20000)) << read_file("/tmp/unbind.log");
  unbind.kill(SIGTERM);
  unbind.kill(SIGCONT);
  EXPECT_EQ(unbind.wait().value(), 128 + SIGTERM) << read_file("/tmp/unbind.log");
  EXPECT_NE(read_file("/tmp/unbind.log").find("SIGTERM came while vfiokit ran"), std::string::npos)
      << read_file("/tmp/unbind.log");
  EXPECT_EQ(driver_of(nvme_), "nvme");
  EXPECT_FALSE(std::filesystem::exists("/run/vfiokit/devices/" + nvme_));
}

// A VFIO device fd outlives the group fd it came from, and keeps vfio-pci's remove() waiting.
// From Linux 6.18 the kernel names its device in /proc/PID/fdinfo (vfio-device-syspath); the
// rig's 6.12 does not, so there it counts as possibly this group's.
TEST_F(Binding, ADeviceFdKeptAfterTheGroupIsClosedKeepsTheGroupInUse) {
  ASSERT_EQ(vfiokit({"bind", edu_}).exit_status, 0);
  {
    UniqueFd device;
    {
      const UniqueFd container(::open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC));
      const UniqueFd group(::open(("/dev/vfio/" + edu_group()).c_str(), O_RDWR | O_CLOEXEC));
      ASSERT_TRUE(container && group) << strerror(errno);
      int container_fd = container.get();
      ASSERT_EQ(::ioctl(group.get(), VFIO_GROUP_SET_CONTAINER, &container_fd), 0)
          << strerror(errno);
      ASSERT_EQ(::ioctl(container.get(), VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0) << strerror(errno);
      device.reset(::ioctl(group.get(), VFIO_GROUP_GET_DEVICE_FD, edu_.c_str()));
      ASSERT_TRUE(device) << strerror(errno);
    }
    const std::string fdinfo = read_file("/proc/self/fdinfo/" + std::to_string(device.get()));
    const bool named = fdinfo.find("vfio-device-syspath:") != std::string::npos;
    const auto unbind = vfiokit({"unbind", edu_});
    EXPECT_EQ(unbind.exit_status, 3) << unbind.output;
    const std::string expected = named
                                     ? "a VFIO device fd for " + edu_ + " (vfiokit_hil_tes"
                                     : "a VFIO device fd the kernel does not name (vfiokit_hil_tes";
    EXPECT_NE(unbind.output.find(expected), std::string::npos) << fdinfo << unbind.output;
    EXPECT_EQ(driver_of(edu_), "vfio-pci");
  }
  EXPECT_EQ(vfiokit({"unbind", edu_}).exit_status, 0);
}

TEST_F(Binding, LoadsVfioPciWhenItIsMissing) {
  ASSERT_EQ(run_command({"rmmod", "vfio_pci"}).exit_status, 0);
  ASSERT_FALSE(std::filesystem::exists("/sys/bus/pci/drivers/vfio-pci"));
  const auto bind = vfiokit({"bind", edu_});
  ASSERT_EQ(bind.exit_status, 0) << bind.output;
  EXPECT_TRUE(std::filesystem::exists("/sys/bus/pci/drivers/vfio-pci"));
  EXPECT_EQ(driver_of(edu_), "vfio-pci");
}

TEST_F(Binding, CheckAndListSeeTheRealDevices) {
  const auto check = vfiokit({"check", nvme_, "--json"});
  EXPECT_EQ(check.exit_status, 0) << check.output;
  EXPECT_EQ(conforming_json(check, "check.json")["ready"], true);
  conforming_json(vfiokit({"doctor", "--json"}), "doctor.json");
  conforming_json(vfiokit({"show", nvme_, "--json"}), "show.json");
  conforming_json(vfiokit({"restore", "--all", "--dry-run", "--json"}), "restore.json");
  const auto list = conforming_json(vfiokit({"list", "--json"}), "list.json");
  bool found = false;
  for (const auto& group : list["groups"]) {
    for (const auto& device : group["devices"]) {
      if (device["bdf"] == nvme_) {
        found = true;
        EXPECT_EQ(device["driver"], "nvme");
        EXPECT_EQ(device["msix"]["vectors"], 65);
        EXPECT_EQ(std::to_string(group["group"].get<int>()), nvme_group_);
      }
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace vfiokit::hil
