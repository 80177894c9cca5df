// Persistence through early boot on the rig's real kernel, where nvme's driver is loaded at boot
// (as a host driver loaded from an initramfs, or built in, would be): `persist --apply` (what
// vfiokit.service runs) binds the persisted nvme although its driver already has it; and a
// Debian initramfs made with boot/'s hook (tools/rig/debian-initramfs, carried in by
// tests/hil/boot_replay.sh) replays the device's add event through its own systemd-udevd and
// kmod: the persisted rule and softdep put the device on vfio-pci although nvme loads for it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::hil {
namespace {

constexpr const char* kDebianInitramfs = "/opt/vfiokit/boot/initrd.img";
constexpr const char* kInitramfsRoot = "/tmp/debian-initramfs";

CommandResult sh(const std::string& script) { return run_command({"sh", "-c", script}); }

// udevd's RUN{builtin} "kmod load" and an asynchronous probe can finish after `udevadm settle`
// returns on the emulated rig: poll.
bool wait_for_driver(const std::string& bdf, const std::string& driver, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    if (driver_of(bdf) == driver) return true;
    ::usleep(100 * 1000);
  }
  return driver_of(bdf) == driver;
}

class Boot : public RigDeviceTest {
 protected:
  void TearDown() override {
    if (in_rig() && !nvme_.empty()) {
      const auto removed = vfiokit({"persist", "--remove", nvme_});
      EXPECT_EQ(removed.exit_status, 0) << removed.output;
    }
    RigDeviceTest::TearDown();
  }
};

TEST_F(Boot, ApplyBindsAPersistedDeviceItsHostDriverTookAtBoot) {
  const auto persist = vfiokit({"persist", nvme_});
  ASSERT_EQ(persist.exit_status, 0) << persist.output;
  EXPECT_EQ(driver_of(nvme_), "nvme") << "persist moved the device now";

  const auto apply = vfiokit({"persist", "--apply", "--json"});
  ASSERT_EQ(apply.exit_status, 0) << apply.output;
  const auto document = nlohmann::json::parse(apply.output);
  ASSERT_EQ(document["devices"].size(), 1u) << apply.output;
  EXPECT_EQ(document["devices"][0]["bdf"], nvme_);
  EXPECT_EQ(document["devices"][0]["action"], "bind");
  EXPECT_EQ(document["devices"][0]["reason"],
            "bound to nvme (loaded before vfio-pci could claim it)");
  EXPECT_EQ(driver_of(nvme_), "vfio-pci");
  EXPECT_TRUE(std::filesystem::exists("/run/vfiokit/devices/" + nvme_)) << "not journalled";

  const auto again = vfiokit({"persist", "--apply", "--json"});
  ASSERT_EQ(again.exit_status, 0) << again.output;
  EXPECT_EQ(nlohmann::json::parse(again.output)["devices"][0]["action"], "already");

  const auto unbind = vfiokit({"unbind", nvme_});
  EXPECT_EQ(unbind.exit_status, 0) << unbind.output;
  EXPECT_EQ(driver_of(nvme_), "nvme");
}

// The device leaves and comes back (PCI remove and rescan: a new device, no driver_override)
// while neither nvme nor vfio-pci is loaded, as at boot before the initramfs loads modules; the
// initramfs's systemd-udevd handles the kernel's add event with the initramfs's rules and loads
// the driver for the modalias with the initramfs's kmod and modprobe.d.
// The initramfs's udevd, started as initramfs-tools' init-top/udev starts it, in a chroot of the
// unpacked initramfs (with /sys, /proc, /dev and /run bound in).
std::string start_udevd() {
  const std::string root = kInitramfsRoot;
  return "set -e; udevd=$(cd " + root +
         " && ls usr/lib/systemd/systemd-udevd lib/systemd/systemd-udevd 2>/dev/null | head -n 1)\n"
         "chroot " +
         root +
         " /$udevd --daemon --resolve-names=never\n"
         "chroot " +
         root + " udevadm control --log-level=debug";
}

// `udevadm control --exit` left a udevd running in the rig (seen with ps): end every udevd (the rig
// has no other) and wait until they are gone.
std::string stop_udevd() {
  return "for p in $(pidof systemd-udevd); do kill $p; done; tries=0; "
         "while pidof systemd-udevd >/dev/null && [ $tries -lt 50 ]; do "
         "tries=$((tries + 1)); sleep 0.2; done; ! pidof systemd-udevd >/dev/null";
}

std::string replay_add(const std::string& bdf) {
  return "set -e; cd /sys/bus/pci\n"
         "if [ -e devices/" +
         bdf +
         "/driver ]; then\n"
         "  echo " +
         bdf + " > devices/" + bdf +
         "/driver/unbind; fi\n"
         // A module still initializing cannot be removed yet.
         "for m in nvme vfio_pci; do tries=0\n"
         "  while [ -e /sys/module/$m ] && ! rmmod $m; do\n"
         "    tries=$((tries + 1)); [ $tries -lt 50 ] || exit 1; sleep 0.2; done; done\n"
         "echo 1 > devices/" +
         bdf +
         "/remove\n"
         "echo 1 > rescan\n"
         "chroot " +
         kInitramfsRoot + " udevadm settle --timeout=60\n";
}

TEST_F(Boot, TheInitramfsUdevPutsThePersistedDeviceOnVfioPciThoughItsDriverLoads) {
  ASSERT_TRUE(std::filesystem::exists(kDebianInitramfs))
      << "run this test through tests/hil/boot_replay.sh, which carries the initramfs in";
  const auto persist = vfiokit({"persist", nvme_});
  ASSERT_EQ(persist.exit_status, 0) << persist.output;

  const std::string root = kInitramfsRoot;
  const auto unpack = sh("set -e; mkdir -p " + root + " && cd " + root + " && gzip -dc " +
                         kDebianInitramfs + " | cpio -id 2>&1");
  ASSERT_EQ(unpack.exit_status, 0) << unpack.output;
  // The initramfs was made on the host from the captured rig's slot: it must hold exactly the
  // rule `persist` wrote here, and the softdep.
  const std::string rule = "/etc/udev/rules.d/61-vfiokit-" + nvme_ + ".rules";
  ASSERT_EQ(read_file_if_exists(root + rule), read_file(rule))
      << "the initramfs's rule is not the one persist writes for " << nvme_;
  EXPECT_EQ(read_file_if_exists(root + "/etc/modprobe.d/vfiokit.conf"),
            read_file("/etc/modprobe.d/vfiokit.conf"));

  ASSERT_EQ(sh("for d in sys proc dev run; do mkdir -p " + root + "/$d; mount --bind /$d " + root +
               "/$d; done")
                .exit_status,
            0);
  const auto udevd = sh(start_udevd());
  ASSERT_EQ(udevd.exit_status, 0) << udevd.output;

  const auto replay = sh(replay_add(nvme_));
  EXPECT_EQ(replay.exit_status, 0) << replay.output;
  EXPECT_TRUE(wait_for_driver(nvme_, "vfio-pci", 10000)) << driver_of(nvme_);
  EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + nvme_ + "/driver_override"), "vfio-pci");
  EXPECT_TRUE(wait_for_path("/sys/module/nvme/initstate", true, 10000))
      << "udev did not load the host driver\n"
      << sh("lsmod; dmesg | tail -n 60").output;
  EXPECT_TRUE(std::filesystem::exists("/sys/module/vfio_pci")) << "the softdep did not load it";

  // The control: the same replay without vfiokit's rule, and nvme takes the device. That is
  // also how it goes home.
  // A fresh udevd reads the rules without vfiokit's.
  ASSERT_EQ(sh(stop_udevd() + "; mv " + root + rule + " /tmp/").exit_status, 0);
  const auto restarted = sh(start_udevd());
  ASSERT_EQ(restarted.exit_status, 0) << restarted.output;
  const auto control = sh(replay_add(nvme_));
  EXPECT_EQ(control.exit_status, 0) << control.output;
  EXPECT_TRUE(wait_for_driver(nvme_, "nvme", 10000))
      << driver_of(nvme_) << "\n"
      << sh("cat /sys/bus/pci/devices/" + nvme_ + "/driver_override; lsmod | head -n 4; ls -R " +
            root +
            "/etc/udev 2>&1; ps | grep [u]devd; dmesg | grep -i 'override\\|vfiokit\\|61-' | tail "
            "-n 30")
             .output;
  EXPECT_TRUE(wait_for_path("/dev/nvme0n1", true, 10000)) << "the disk did not come back";

  sh(stop_udevd() + "; for d in sys proc dev run; do umount " + root + "/$d; done");
  // Home whatever happened above: no override, and nvme's probe.
  if (driver_of(nvme_) != "nvme") {
    sh("cd /sys/bus/pci; [ ! -e devices/" + nvme_ + "/driver ] || echo " + nvme_ + " > devices/" +
       nvme_ + "/driver/unbind; echo > devices/" + nvme_ +
       "/driver_override; modprobe nvme; echo " + nvme_ + " > drivers_probe");
    wait_for_driver(nvme_, "nvme", 10000);
  }
}

}  // namespace
}  // namespace vfiokit::hil
