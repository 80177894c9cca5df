// vfiokit launch on the rig's real kernel: payloads in the built-in VMM drive edu and the NVMe
// as guest PCI functions (DMA into guest RAM through the IOMMU, MSI and MSI-X into the guest),
// failures end clearly and restore the device, and QEMU boots a Linux guest that reads edu's
// identification register through its BAR. Every test ends with the devices home.
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <signal.h>
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <thread>
#include <utility>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"
#include "vfiokit/base/text.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/payloads.h"
#include "vfiokit/vfio/open.h"
#include "vfiokit/vmm/passthrough.h"

namespace vfiokit::hil {
namespace {

using Clock = std::chrono::steady_clock;

bool wait_for_text(const std::string& path, const std::string& text, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    if (read_file_if_exists(path).value_or("").find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool qemu_running() {
  for (const auto& pid : list_dir("/proc")) {
    if (read_line_if_exists("/proc/" + pid + "/comm").value_or("") == "qemu-system-x86")
      return true;
  }
  return false;
}

class LaunchTest : public RigDeviceTest {
 protected:
  // Both devices where they started and nothing left in the journal.
  void expect_everything_home() {
    EXPECT_EQ(driver_of(nvme_), "nvme");
    EXPECT_EQ(driver_of(edu_), "(none)");
    EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + nvme_ + "/driver_override"), "(null)");
    EXPECT_EQ(read_line_if_exists("/sys/bus/pci/devices/" + edu_ + "/driver_override"), "(null)");
    EXPECT_TRUE(list_dir("/run/vfiokit/devices").empty());
    EXPECT_TRUE(wait_for_path("/dev/nvme0n1", true, 5000)) << "the nvme disk did not come back";
  }
};

// A payload run, with a timeout that leaves the emulated rig room. No retry: the hangs once put
// down to the rig's nested KVM were vfiokit's own (vCPUs without CPUID had a one-shot LAPIC timer,
// so a payload's waits stopped timing out; docs/hil.md). A hang fails the test with launch's
// diagnosis of where the interrupt stopped.
CommandResult launch_payload(const std::vector<std::string>& arguments) {
  std::vector<std::string> command{"launch"};
  command.insert(command.end(), arguments.begin(), arguments.end());
  command.insert(command.end(), {"--timeout", "15"});
  return vfiokit(command);
}

using Launch = LaunchTest;
using LaunchQemu = LaunchTest;

TEST_F(Launch, EduDmaPassesInTheGuest) {
  const auto run = launch_payload({edu_, "--payload", "edu-dma", "--json"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  const auto document = conforming_json(run, "launch.json");
  EXPECT_EQ(document["passed"], true);
  EXPECT_EQ(document["result"], "passed");
  const std::string log = document["log"];
  EXPECT_NE(log.find("edu at guest 00:01.0"), std::string::npos) << log;
  EXPECT_NE(log.find("identical"), std::string::npos) << log;
  // The payload reports how many MSIs it took: one per DMA transfer, all delivered by irqfd.
  ASSERT_EQ(document["values"].size(), 1u);
  EXPECT_GE(document["values"][0].get<unsigned>(), 2u);
  EXPECT_LT(document["timing"]["first_instruction_ms"].get<double>(),
            document["timing"]["first_mailbox_ms"].get<double>());
  EXPECT_EQ(document["bound_and_restored"][0], edu_);
  expect_everything_home();
}

// INTx through the resampling irqfd: edu with MSI off raises its pin; each raise must arrive
// once (the EOI's resample unmasks the line in vfio-pci, and a line left up would come again),
// and Interrupt Disable must hold one back until cleared (the payload checks all of it).
void expect_edu_intx_run(const CommandResult& run, const char* msi_line) {
  ASSERT_EQ(run.exit_status, 0) << run.output;
  const auto document = conforming_json(run, "launch.json");
  EXPECT_EQ(document["passed"], true);
  const std::string log = document["log"];
  EXPECT_NE(log.find(msi_line), std::string::npos) << log;
  EXPECT_NE(log.find("edu-intx: Interrupt Pin 0x00000001"), std::string::npos) << log;
  EXPECT_NE(log.find("each raise arrived once"), std::string::npos) << log;
  EXPECT_NE(log.find("Interrupt Disable held the interrupt back"), std::string::npos) << log;
  ASSERT_EQ(document["values"].size(), 2u) << log;
  EXPECT_EQ(document["values"][0].get<unsigned>(), 17u);  // 00:01.0 INTA#: IOAPIC input 17
  EXPECT_EQ(document["values"][1].get<unsigned>(), 5u);   // 4 rounds and the held-back one
}

TEST_F(Launch, IntxWhenTheGuestLeavesMsiOff) {
  const auto run = launch_payload({edu_, "--payload", "edu-intx", "--json"});
  expect_edu_intx_run(run, "edu-intx: MSI capability present, left off");
  expect_everything_home();
}

TEST_F(Launch, IntxForcedHidesMsi) {
  const auto run =
      launch_payload({edu_, "--payload", "edu-intx", "--interrupts", "intx", "--json"});
  expect_edu_intx_run(run, "edu-intx: MSI capability hidden");
  expect_everything_home();
  // edu-dma needs MSI: with it hidden, the payload says so.
  const auto msi = launch_payload({edu_, "--payload", "edu-dma", "--interrupts", "intx"});
  EXPECT_EQ(msi.exit_status, 1) << msi.output;
  EXPECT_NE(msi.output.find("lacks the MSI or MSI-X capability"), std::string::npos) << msi.output;
  expect_everything_home();
}

// A guest's function level reset of the rig's NVMe (PCIe, FLR in Device Capabilities), on the
// real vfio-pci and KVM: the device model takes down MSI-X, VFIO_DEVICE_RESET resets the
// device, and the emulated state and the wiring come back as after a reset (INTx, as MSI and
// MSI-X are off).
std::uint32_t find_capability(vmm::PassthroughDevice& model, std::uint8_t id) {
  for (std::uint32_t at = model.config_read(PCI_CAPABILITY_LIST, 1), steps = 0;
       at != 0 && steps < 48; at = model.config_read(at + PCI_CAP_LIST_NEXT, 1), ++steps) {
    if (model.config_read(at, 1) == id) return at;
  }
  return 0;
}

TEST_F(Launch, FlrOfTheNvmeResetsItsInterruptsAndWiring) {
  ASSERT_EQ(vfiokit({"bind", nvme_}).exit_status, 0);
  {
    vfio::OpenedDevice opened = vfio::open_vfio_device({}, *pci::parse_bdf(nvme_));
    const kvm::KvmSystem kvm = kvm::KvmSystem::open();
    payloads::PayloadGuest guest(kvm, payloads::find("silent")->image, {});
    vmm::PassthroughDevice model(opened.device, guest.vm(), guest.routes());
    EXPECT_EQ(model.interrupts().wired_index(), VFIO_PCI_INTX_IRQ_INDEX);
    const std::uint32_t msix = find_capability(model, PCI_CAP_ID_MSIX);
    const std::uint32_t pcie = find_capability(model, PCI_CAP_ID_EXP);
    ASSERT_NE(msix, 0u);
    ASSERT_NE(pcie, 0u);
    model.config_write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    model.config_write(msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    ASSERT_EQ(model.interrupts().wired_index(), VFIO_PCI_MSIX_IRQ_INDEX);
    const std::uint32_t control = model.config_read(pcie + PCI_EXP_DEVCTL, 2);
    model.config_write(pcie + PCI_EXP_DEVCTL, 2, control | PCI_EXP_DEVCTL_BCR_FLR);
    EXPECT_EQ(model.config_read(pcie + PCI_EXP_DEVCTL, 2) & PCI_EXP_DEVCTL_BCR_FLR, 0u);
    EXPECT_EQ(model.config_read(msix + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE, 0u);
    EXPECT_EQ(model.config_read(PCI_COMMAND, 2) &
                  (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE),
              0u);
    EXPECT_EQ(model.interrupts().wired_index(), VFIO_PCI_INTX_IRQ_INDEX);
    // And it takes MSI-X again, as from power-up.
    model.config_write(msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    EXPECT_EQ(model.interrupts().wired_index(), VFIO_PCI_MSIX_IRQ_INDEX);
  }
  EXPECT_EQ(vfiokit({"restore", "--all"}).exit_status, 0);
  expect_everything_home();
}

TEST_F(Launch, NvmeIdentifyReadsTheSerialByDmaWithAnMsixCompletion) {
  const auto run =
      launch_payload({nvme_, "--payload", "nvme-identify", "--expect-serial", "vfiokit-nvme-0"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find("serial 'vfiokit-nvme-0'"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("MSI-X entry 0"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("result: passed"), std::string::npos) << run.output;
  expect_everything_home();

  const auto wrong =
      launch_payload({nvme_, "--payload", "nvme-identify", "--expect-serial", "someone-else"});
  EXPECT_EQ(wrong.exit_status, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("Identify reported another serial"), std::string::npos)
      << wrong.output;
  expect_everything_home();
}

TEST_F(Launch, AFlatBinaryFromAPathRunsLikeABuiltInPayload) {
  const auto run = launch_payload({edu_, "--payload", "/opt/vfiokit/payloads/edu-dma.bin"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find("result: passed"), std::string::npos) << run.output;
  const auto missing = vfiokit({"launch", edu_, "--payload", "/opt/nothing/here.bin"});
  EXPECT_EQ(missing.exit_status, 2) << missing.output;
  EXPECT_NE(missing.output.find("'/opt/nothing/here.bin' does not exist"), std::string::npos);
  expect_everything_home();
}

TEST_F(Launch, APayloadOnADeviceItDoesNotDriveSaysWhatItFoundThere) {
  const std::string e1000e = find_pci_function(kE1000eVendor, kE1000eDevice).value_or("");
  ASSERT_FALSE(e1000e.empty()) << "the rig has no e1000e";
  const std::string driver = driver_of(e1000e);
  const auto run = launch_payload({e1000e, "--payload", "edu-dma"});
  EXPECT_EQ(run.exit_status, 1) << run.output;
  EXPECT_NE(run.output.find("result: FAILED: the payload failed: 00:01.0 is 8086:10d3, not the "
                            "edu device (1234:11e8) this payload drives"),
            std::string::npos)
      << run.output;
  EXPECT_EQ(driver_of(e1000e), driver);
  expect_everything_home();
}

TEST_F(Launch, AFaultingPayloadEndsWithTheExceptionAndRestores) {
  const auto run = vfiokit({"launch", nvme_, "--payload", "faulty"});
  EXPECT_EQ(run.exit_status, 1) << run.output;
  EXPECT_NE(run.output.find("result: FAILED: the payload failed: exception 0x0 (divide error)"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("back on nvme"), std::string::npos) << run.output;
  expect_everything_home();
}

TEST_F(Launch, ASilentPayloadTimesOutAndRestores) {
  const auto start = Clock::now();
  const auto run = vfiokit({"launch", nvme_, "--payload", "silent", "--timeout", "3"});
  const auto took = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start);
  EXPECT_EQ(run.exit_status, 1) << run.output;
  EXPECT_NE(run.output.find("the payload reported no result within 3 s"), std::string::npos)
      << run.output;
  EXPECT_LT(took.count(), 20) << "the timeout did not end the run";
  expect_everything_home();
}

TEST_F(Launch, SigtermStopsTheGuestAndRestores) {
  const std::string log = "/tmp/launch-sigterm.log";
  ChildProcess launch(
      spawn_background({"vfiokit", "launch", nvme_, "--payload", "silent"}, {}, log));
  ASSERT_TRUE(wait_for_text(log, "moved nvme -> vfio-pci", 20000)) << read_file(log);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  launch.kill(SIGTERM);
  EXPECT_EQ(launch.wait().value(), 1) << read_file(log);
  EXPECT_NE(read_file(log).find("interrupted before the payload reported a result"),
            std::string::npos)
      << read_file(log);
  expect_everything_home();
}

TEST_F(Launch, AKilledLaunchIsUndoneByRestore) {
  const std::string log = "/tmp/launch-killed.log";
  ChildProcess launch(
      spawn_background({"vfiokit", "launch", nvme_, "--payload", "silent"}, {}, log));
  ASSERT_TRUE(wait_for_text(log, "moved nvme -> vfio-pci", 20000)) << read_file(log);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  launch.kill(SIGKILL);
  EXPECT_EQ(launch.wait().value(), 128 + SIGKILL);
  EXPECT_EQ(driver_of(nvme_), "vfio-pci");
  const auto restore = vfiokit({"restore", "--all"});
  ASSERT_EQ(restore.exit_status, 0) << restore.output;
  expect_everything_home();
}

// The inner Linux guest through launch_inner_guest (rig_support.h): a boot that stalls in the
// rig's nested KVM is told from a slow one and tried again, each retry recorded.
TEST_F(LaunchQemu, ALinuxGuestReadsEduIdentificationThroughItsBar) {
  ASSERT_TRUE(std::filesystem::exists("/opt/vfiokit/guest/vmlinuz"))
      << "the rig was booted without --with-qemu";
  const auto run = launch_inner_guest(edu_);
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find("-device vfio-pci,host=" + edu_), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("inner-guest: edu "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("identification 0x010000ed"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("QEMU exited with status 0"), std::string::npos) << run.output;
  expect_everything_home();
}

TEST_F(LaunchQemu, NvmeReturnsToItsDriverAfterTheGuest) {
  const auto run = launch_inner_guest(nvme_);
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find("inner-guest: no edu on the PCI bus"), std::string::npos) << run.output;
  expect_everything_home();
}

TEST_F(LaunchQemu, DryRunPrintsTheCommandAndChangesNothing) {
  const auto run = vfiokit({"launch", nvme_, "--qemu", "--dry-run", "--json", "--", "-m", "1G"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  const auto document = conforming_json(run, "launch.json");
  const std::vector<std::string> expected{"qemu-system-x86_64", "-m", "1G", "-device",
                                          "vfio-pci,host=" + nvme_};
  EXPECT_EQ(document["command"].get<std::vector<std::string>>(), expected);
  EXPECT_EQ(driver_of(nvme_), "nvme");
}

TEST_F(LaunchQemu, AMissingQemuIsAUsageErrorBeforeAnythingMoves) {
  const auto run = vfiokit({"launch", nvme_, "--qemu", "--qemu-binary", "/opt/no/qemu"});
  EXPECT_EQ(run.exit_status, 2) << run.output;
  EXPECT_NE(run.output.find("/opt/no/qemu"), std::string::npos) << run.output;
  // A dry run only prints the command: it needs no QEMU on this machine.
  const auto dry_run =
      vfiokit({"launch", nvme_, "--qemu", "--qemu-binary", "/opt/no/qemu", "--dry-run"});
  EXPECT_EQ(dry_run.exit_status, 0) << dry_run.output;
  EXPECT_NE(dry_run.output.find("/opt/no/qemu -device vfio-pci,host=" + nvme_), std::string::npos)
      << dry_run.output;
  EXPECT_EQ(driver_of(nvme_), "nvme");
  EXPECT_TRUE(list_dir("/run/vfiokit/devices").empty());
}

// A payload never finishes, so QEMU runs until it is told to stop.
std::vector<std::string> endless_qemu_launch(const std::string& bdf) {
  return {"vfiokit", "launch", bdf,        "--qemu",   "--",
          "-M",      "q35",    "-accel",   "kvm",      "-cpu",
          "host",    "-m",     "64M",      "-display", "none",
          "-vga",    "none",   "-monitor", "none",     "-serial",
          "none",    "-nic",   "none",     "-kernel",  "/opt/vfiokit/payloads/silent.bin"};
}

TEST_F(LaunchQemu, SigtermReachesQemuAndTheDevicesComeHome) {
  const std::string log = "/tmp/launch-qemu-sigterm.log";
  ChildProcess launch(spawn_background(endless_qemu_launch(nvme_), {}, log));
  ASSERT_TRUE(wait_for_text(log, "running: ", 20000)) << read_file(log);
  // Only once QEMU catches SIGTERM (its SigCgt mask says so) does SIGTERM mean "shut down
  // cleanly"; before that the default action kills it (exit 143), which is not what this tests.
  ASSERT_TRUE(wait_until_qemu_catches(SIGTERM, std::chrono::seconds(30))) << read_file(log);
  launch.kill(SIGTERM);
  // QEMU ends cleanly on SIGTERM, and launch --qemu exits as QEMU did.
  EXPECT_EQ(launch.wait().value(), 0) << read_file(log);
  EXPECT_NE(read_file(log).find("QEMU exited with status 0 after SIGTERM, which vfiokit passed on; "
                                "devices restored"),
            std::string::npos)
      << read_file(log);
  EXPECT_FALSE(qemu_running());
  expect_everything_home();
}

TEST_F(LaunchQemu, RunAsGivesQemuAnUnprivilegedUserItsGroupNodeAndEnoughLockedMemory) {
  const std::string log = "/tmp/launch-qemu-run-as.log";
  std::vector<std::string> command = endless_qemu_launch(nvme_);
  command.insert(command.begin() + 4, {"--run-as", "65534:65534"});
  ChildProcess launch(spawn_background(command, {}, log));
  ASSERT_TRUE(wait_for_text(log, "running: ", 20000)) << read_file(log);
  EXPECT_NE(read_file(log).find("-runas 65534:65534"), std::string::npos) << read_file(log);
  // QEMU sets up as root, then becomes the user: real, effective, saved and filesystem ids.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  std::string uid;
  while ((uid = qemu_proc_line("status", "Uid:")).find("65534") == std::string::npos &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(split_words(uid),
            (std::vector<std::string_view>{"Uid:", "65534", "65534", "65534", "65534"}))
      << read_file(log);
  const std::string gid = qemu_proc_line("status", "Gid:");
  EXPECT_EQ(split_words(gid),
            (std::vector<std::string_view>{"Gid:", "65534", "65534", "65534", "65534"}));
  // 64 MiB of guest RAM, plus the 1 GiB allowance: 1140850688 bytes, soft and hard.
  const std::string memlock = qemu_proc_line("limits", "Max locked memory");
  EXPECT_EQ(split_words(memlock),
            (std::vector<std::string_view>{"Max", "locked", "memory", "1140850688", "1140850688",
                                           "bytes"}));
  const std::string node =
      "/dev/vfio/" +
      read_link_name("/sys/bus/pci/devices/" + nvme_ + "/iommu_group").value_or("(no group)");
  struct stat st {};
  ASSERT_EQ(::stat(node.c_str(), &st), 0) << node;
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  launch.kill(SIGTERM);
  EXPECT_EQ(launch.wait().value(), 0) << read_file(log);
  EXPECT_FALSE(qemu_running());
  expect_everything_home();
}

TEST_F(LaunchQemu, AKilledLaunchTakesQemuWithItAndRestoreLeavesNothing) {
  const std::string log = "/tmp/launch-qemu-killed.log";
  ChildProcess launch(spawn_background(endless_qemu_launch(nvme_), {}, log));
  ASSERT_TRUE(wait_for_text(log, "running: ", 20000)) << read_file(log);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_TRUE(qemu_running()) << read_file(log);
  launch.kill(SIGKILL);
  EXPECT_EQ(launch.wait().value(), 128 + SIGKILL);
  // PR_SET_PDEATHSIG: QEMU is told to go when vfiokit dies, and with it goes its hold on the group.
  const auto deadline = Clock::now() + std::chrono::seconds(15);
  while (qemu_running() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_FALSE(qemu_running()) << "QEMU outlived the vfiokit that started it";
  EXPECT_EQ(driver_of(nvme_), "vfio-pci");
  const auto restore = vfiokit({"restore", "--all"});
  ASSERT_EQ(restore.exit_status, 0) << restore.output;
  expect_everything_home();
}

}  // namespace
}  // namespace vfiokit::hil
