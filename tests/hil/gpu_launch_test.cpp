// Issue 13's proof in the rig: what `launch --qemu` gives a passthrough guest, seen from inside
// the inner Linux guest (tools/rig/guest-init prints its own view: firmware, CPUs, PCI topology,
// its nvme driver's write and read) and from the rig around it (hugepages held, vCPU threads'
// affinity, the disk's contents afterwards). Every test ends with the devices home.
#include <signal.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::hil {
namespace {

// guest-init's test block on the nvme disk: 4 KiB at 8 MiB, filled with this line repeated.
constexpr std::string_view kGuestPattern = "vfiokit inner guest wrote this block";
constexpr std::string_view kTestBlock = "2048";  // in 4 KiB blocks

// The nvme disk's test block, read with O_DIRECT (what the device holds, not the page cache).
std::string read_test_block() {
  return run_command({"dd", "if=/dev/nvme0n1", "bs=4096", "skip=" + std::string(kTestBlock),
                      "count=1", "iflag=direct"})
      .output;
}

CommandResult zero_test_block() {
  return run_command({"dd", "if=/dev/zero", "of=/dev/nvme0n1", "bs=4096",
                      "seek=" + std::string(kTestBlock), "count=1", "oflag=direct"});
}

std::uint64_t meminfo(std::string_view key) {
  const auto value = find_key_value(read_file("/proc/meminfo"), key).value_or("");
  const auto words = split_words(value);
  return words.empty() ? 0 : parse_uint(words[0]).value_or(0);
}

// Cpus_allowed_list of each thread of the running QEMU, by thread name ("CPU 0/KVM" for vCPU 0
// when QEMU runs with -name debug-threads=on).
std::map<std::string, std::string> qemu_thread_affinity() {
  std::map<std::string, std::string> affinity;
  const auto pid = qemu_pid();
  if (!pid) return affinity;
  const std::string tasks = "/proc/" + std::to_string(*pid) + "/task/";
  for (const auto& tid : list_dir(tasks)) {
    const auto name = read_line_if_exists(tasks + tid + "/comm");
    const auto status = read_file_if_exists(tasks + tid + "/status");
    if (!name || !status) continue;
    affinity[*name] = find_key_value(*status, "Cpus_allowed_list").value_or("?");
  }
  return affinity;
}

class GpuLaunchTest : public RigDeviceTest {
 protected:
  void SetUp() override {
    RigDeviceTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_TRUE(std::filesystem::exists("/opt/vfiokit/guest/vmlinuz"))
        << "the rig was booted without --with-qemu";
    hugepages_before_ = read_line_if_exists(kNrHugepages).value_or("0");
  }
  void TearDown() override {
    if (in_rig()) write_attribute(kNrHugepages, hugepages_before_);
    RigDeviceTest::TearDown();
  }

  static constexpr const char* kNrHugepages = "/proc/sys/vm/nr_hugepages";
  std::string hugepages_before_;
};

using GpuLaunch = GpuLaunchTest;

// On q35 (no --flat) the device gets a pcie-root-port of its own: the inner guest's sysfs shows
// it behind a 1b36:000c bridge, and Linux's own nvme driver works it over MSI-X (a write and a
// read with O_DIRECT). The host reads the guest's write once the disk is back on its driver.
TEST_F(GpuLaunch, NvmeSitsBehindARootPortAndTheGuestsNvmeDriverWritesAndReadsIt) {
  ASSERT_EQ(zero_test_block().exit_status, 0);
  ASSERT_EQ(read_test_block().find(kGuestPattern), std::string::npos);

  const auto run = launch_inner_guest(nvme_);
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find("-device pcie-root-port,"), std::string::npos) << run.output;
  std::smatch topology;
  const std::string nvme_line = [&] {
    for (auto line : split_lines(run.output)) {
      // The inner guest's console ends its lines with CR LF.
      if (line.ends_with('\r')) line.remove_suffix(1);
      if (line.starts_with("inner-guest: pci ") && line.find(" 1b36:0010 ") != line.npos)
        return std::string(line);
    }
    return std::string();
  }();
  ASSERT_TRUE(std::regex_match(
      nvme_line, topology,
      std::regex(R"(inner-guest: pci (\S+) 1b36:0010 parent (\S+) \(([0-9a-f:]+)\))")))
      << "the guest does not list the nvme behind a bridge: '" << nvme_line << "'\n"
      << run.output;
  EXPECT_EQ(topology[3], "1b36:000c") << "not a pcie-root-port:\n" << run.output;
  EXPECT_NE(run.output.find("inner-guest: nvme0n1 write+read ok (4096 bytes at 8388608, driver "
                            "nvme on " +
                            topology[1].str() + ")"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("inner-guest: firmware bios"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("QEMU exited with status 0"), std::string::npos) << run.output;
  expect_devices_home(nvme_, edu_);
  EXPECT_NE(read_test_block().find(kGuestPattern), std::string::npos)
      << "the host does not read what the guest wrote";
}

// e1000e's option ROM (QEMU attaches its efi-e1000e.rom to the emulated card): dumped and
// validated by `vfiokit rom`, then given to a guest as romfile=: the inner guest reads back the
// very bytes the host saved through its own sysfs `rom`.
TEST_F(GpuLaunch, E1000eRomIsDumpedValidatedAndReusedAsRomfile) {
  const std::string e1000e = find_pci_function(kE1000eVendor, kE1000eDevice).value_or("");
  ASSERT_FALSE(e1000e.empty()) << "the rig has no e1000e";
  const std::string rom = "/tmp/gpu-launch-e1000e.rom";
  std::filesystem::remove(rom);
  const auto dump = vfiokit({"rom", e1000e, "--output", rom, "--json"});
  ASSERT_EQ(dump.exit_status, 0) << dump.output;
  const auto document = conforming_json(dump, "rom.json");
  EXPECT_EQ(document["valid"], true) << dump.output;
  const std::string bytes = read_file(rom);
  ASSERT_GE(bytes.size(), 512u);
  EXPECT_EQ(bytes.substr(0, 2), std::string("\x55\xaa", 2));
  const auto sum = run_command({"md5sum", rom});
  ASSERT_EQ(sum.exit_status, 0) << sum.output;
  const std::string md5 = sum.output.substr(0, sum.output.find(' '));

  InnerGuestOptions options;
  options.launch_options = {"--device-opt", e1000e + ":romfile=" + rom};
  const auto run = launch_inner_guest(e1000e, options);
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find(",romfile=" + rom), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(" " + std::to_string(bytes.size()) + " bytes md5 " + md5),
            std::string::npos)
      << "the guest did not read the ROM the host saved (" << bytes.size() << " bytes, md5 " << md5
      << ")\n"
      << run.output;
  EXPECT_EQ(driver_of(e1000e), "e1000e");
  expect_devices_home(nvme_, edu_);
}

// The generated command, without booting: q35 puts the device behind a root port whose id its
// -device names as bus; --flat leaves it on the root bus as before issue 13.
TEST_F(GpuLaunch, DryRunOnQ35AddsARootPortAndFlatDoesNot) {
  const auto run =
      vfiokit({"launch", nvme_, "--qemu", "--dry-run", "--json", "--", "-M", "q35", "-m", "1G"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  const auto command =
      conforming_json(run, "launch.json")["command"].get<std::vector<std::string>>();
  const auto port = std::find_if(command.begin(), command.end(), [](const std::string& word) {
    return word.starts_with("pcie-root-port,");
  });
  ASSERT_NE(port, command.end()) << run.output;
  const std::smatch id = [&] {
    std::smatch match;
    std::regex_search(*port, match, std::regex("(^|,)id=([^,]+)"));
    return match;
  }();
  ASSERT_FALSE(id.empty()) << *port;
  const auto device = std::find_if(command.begin(), command.end(), [&](const std::string& word) {
    return word.starts_with("vfio-pci,host=" + nvme_);
  });
  ASSERT_NE(device, command.end()) << run.output;
  EXPECT_NE((*device + ",").find(",bus=" + id[2].str() + ","), std::string::npos) << *device;

  const auto flat = vfiokit(
      {"launch", nvme_, "--qemu", "--flat", "--dry-run", "--json", "--", "-M", "q35", "-m", "1G"});
  ASSERT_EQ(flat.exit_status, 0) << flat.output;
  const std::vector<std::string> expected{
      "qemu-system-x86_64", "-M", "q35", "-m", "1G", "-device", "vfio-pci,host=" + nvme_};
  EXPECT_EQ(conforming_json(flat, "launch.json")["command"].get<std::vector<std::string>>(),
            expected);
  EXPECT_EQ(driver_of(nvme_), "nvme");
}

// --hugepages 2M: 256 MiB of guest RAM from 2 MiB pages reserved at run time, preallocated, so
// while the guest runs the rig's HugePages_Free is 128 lower, and all come back afterwards.
TEST_F(GpuLaunch, AHugepageBackedGuestBootsAndHoldsItsPagesWhileItRuns) {
  write_attribute(kNrHugepages, "160");
  ASSERT_GE(meminfo("HugePages_Free"), 128u) << read_file("/proc/meminfo");
  const std::uint64_t free_before = meminfo("HugePages_Free");
  std::uint64_t lowest = free_before;
  InnerGuestOptions options;
  options.launch_options = {"--hugepages", "2M"};
  options.while_running = [&] { lowest = std::min(lowest, meminfo("HugePages_Free")); };
  const auto run = launch_inner_guest(edu_, options);
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find("memory-backend-memfd,"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(",hugetlb=on,hugetlbsize=2M,prealloc=on"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("identification 0x010000ed"), std::string::npos) << run.output;
  EXPECT_EQ(free_before - lowest, 128u) << "256 MiB of guest RAM is 128 pages of 2 MiB";
  EXPECT_EQ(meminfo("HugePages_Free"), free_before) << "QEMU did not give its pages back";
  expect_devices_home(nvme_, edu_);
}

// Too few free hugepages: refused (exit 3) before anything is bound, naming the pool to grow.
TEST_F(GpuLaunch, TooFewHugepagesIsRefusedBeforeAnythingMoves) {
  write_attribute(kNrHugepages, "0");
  InnerGuestOptions options;
  options.launch_options = {"--hugepages", "2M"};
  const auto run = launch_inner_guest(nvme_, options);
  EXPECT_EQ(run.exit_status, 3) << run.output;
  EXPECT_NE(run.output.find("nr_hugepages"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("inner-guest:"), std::string::npos) << run.output;
  EXPECT_EQ(driver_of(nvme_), "nvme");
  EXPECT_TRUE(list_dir("/run/vfiokit/devices").empty());
}

// --firmware uefi: OVMF's code read-only and a per-guest copy of its variable store, kept under
// /var/lib/vfiokit/guests/NAME; the inner guest finds itself booted by UEFI.
TEST_F(GpuLaunch, UefiBootsTheInnerGuestWithAVarsCopyOfItsOwn) {
  ASSERT_TRUE(std::filesystem::exists("/usr/share/OVMF/OVMF_CODE_4M.fd"))
      << "the rig image carries no OVMF: tools/install-deps --rig installs the ovmf package";
  const std::string vars = "/var/lib/vfiokit/guests/rig-uefi/OVMF_VARS.fd";
  std::filesystem::remove(vars);
  InnerGuestOptions options;
  options.launch_options = {"--firmware", "uefi", "--name", "rig-uefi"};
  options.boot_limit = std::chrono::seconds(180);
  const auto run = launch_inner_guest(edu_, options);
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find("if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("if=pflash,format=raw,unit=1,file=" + vars), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("inner-guest: firmware uefi"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("identification 0x010000ed"), std::string::npos) << run.output;
  EXPECT_EQ(std::filesystem::file_size(vars),
            std::filesystem::file_size("/usr/share/OVMF/OVMF_VARS_4M.fd"));
  expect_devices_home(nvme_, edu_);
}

// --cpus 2 --pin 0,1 on the rig's two CPUs: while QEMU runs, its vCPU threads (named by --name's
// debug-threads=on) are each allowed only their CPU, where QEMU's own threads may use both, and
// the launch says it verified that. The guest is firmware that never ends (SeaBIOS finds nothing
// to boot and tries again), not the inner Linux: in the rig an inner Linux with two vCPUs hangs
// in early boot (docs/hil.md, Limits).
// Last in this file: should the rig's nested KVM hang this guest, the tests before it have run.
TEST_F(GpuLaunch, PinnedVcpuThreadsRunOnTheirCpusAndTheLaunchSaysSo) {
  const std::string log = "/tmp/gpu-launch-pin.log";
  std::vector<std::string> command{"vfiokit", "launch", edu_,     "--qemu",  "--cpus", "2",
                                   "--pin",   "0,1",    "--name", "rig-pin", "--"};
  const std::vector<std::string> endless_guest{
      "-M",   "q35",  "-accel", "kvm",      "-cpu", "host",    "-m",   "64M",  "-display",
      "none", "-vga", "none",   "-monitor", "none", "-serial", "none", "-nic", "none"};
  command.insert(command.end(), endless_guest.begin(), endless_guest.end());
  ChildProcess launch(spawn_background(command, {}, log));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::map<std::string, std::string> affinity;
  while (std::chrono::steady_clock::now() < deadline) {
    affinity = qemu_thread_affinity();
    if (affinity["CPU 0/KVM"] == "0" && affinity["CPU 1/KVM"] == "1") break;
    if (launch.wait_for(std::chrono::milliseconds(200))) break;  // ended early: the log says why
  }
  EXPECT_EQ(affinity["CPU 0/KVM"], "0") << read_file(log);
  EXPECT_EQ(affinity["CPU 1/KVM"], "1") << read_file(log);
  // Wait for the launch's report of the pinning (printed once QEMU was told to continue).
  EXPECT_TRUE(wait_for_text(log, "pinned", 20000)) << read_file(log);
  ASSERT_TRUE(wait_until_qemu_catches(SIGTERM, std::chrono::seconds(30))) << read_file(log);
  launch.kill(SIGTERM);
  EXPECT_EQ(launch.wait().value(), 0) << read_file(log);
  EXPECT_NE(read_file(log).find(" -smp 2 "), std::string::npos) << read_file(log);
  // The run's private folder (QMP socket) is gone with QEMU.
  for (const auto& entry : list_dir("/run/vfiokit")) {
    EXPECT_FALSE(entry.starts_with("launch-")) << "left behind: /run/vfiokit/" << entry;
  }
  expect_devices_home(nvme_, edu_);
}

}  // namespace
}  // namespace vfiokit::hil
