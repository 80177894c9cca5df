// `vfiokit launch --qemu` for a GPU guest as users run it, on the gpu-audio-group fixture (a
// GPU at 01:00.0 with its HDMI audio at 01:00.1, one IOMMU group): where each function sits in
// the guest, --device-opt, UEFI with the guest's own variables, hugepages and pinning, each
// checked before anything moves.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"

namespace vfiokit {
namespace {

CommandResult vfiokit_cli(std::vector<std::string> args) {
  args.insert(args.begin(), VFIOKIT_CLI);
  return run_command(args);
}

struct GpuLaunchCli : testing::Test {
  test::FixtureCopy copy{test::fixture("sysfs/gpu-audio-group")};

  CommandResult launch(std::vector<std::string> options,
                       std::vector<std::string> qemu = {"-M", "q35", "-m", "4G"}) {
    std::vector<std::string> args{"--host-root", copy.root().string(), "launch", "0000:01:00.0",
                                  "--qemu",      "--dry-run",          "--json"};
    args.insert(args.end(), options.begin(), options.end());
    args.emplace_back("--");
    args.insert(args.end(), qemu.begin(), qemu.end());
    return vfiokit_cli(args);
  }
  static std::vector<std::string> command_of(const CommandResult& result) {
    return nlohmann::json::parse(result.output)["command"].get<std::vector<std::string>>();
  }
  static bool has(const std::vector<std::string>& command, const std::string& argument) {
    return std::find(command.begin(), command.end(), argument) != command.end();
  }
  void write(const std::string& relative, const std::string& contents) const {
    const auto path = copy.root() / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << contents;
  }
  // Debian 12's ovmf 4M pair, by size (what find_ovmf matches them by).
  void install_ovmf() const {
    write("usr/share/OVMF/OVMF_CODE_4M.fd", std::string(3653632, 'c'));
    write("usr/share/OVMF/OVMF_VARS_4M.fd", std::string(540672, 'v'));
  }
  void hugepage_pool(unsigned free_pages) const {
    const std::string pool = "sys/kernel/mm/hugepages/hugepages-2048kB/";
    write(pool + "nr_hugepages", std::to_string(free_pages) + "\n");
    write(pool + "free_hugepages", std::to_string(free_pages) + "\n");
    write(pool + "resv_hugepages", "0\n");
    write(pool + "surplus_hugepages", "0\n");
  }
};

TEST_F(GpuLaunchCli, OnQ35TheGpuAndItsAudioShareARootPortAndThePlanSaysWhere) {
  const auto result = launch({});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto document = nlohmann::json::parse(result.output);
  EXPECT_EQ(document["guest_devices"][0]["bdf"], "0000:01:00.0");
  EXPECT_EQ(document["guest_devices"][0]["guest"], "function 0 behind pcie-root-port vfiokit-rp0");
  EXPECT_EQ(document["guest_devices"][1]["guest"], "function 1 behind pcie-root-port vfiokit-rp0");
  const auto command = command_of(result);
  EXPECT_TRUE(has(command, "pcie-root-port,id=vfiokit-rp0,chassis=1,slot=0"));
  EXPECT_TRUE(has(command, "vfio-pci,host=0000:01:00.1,bus=vfiokit-rp0,addr=0.1"));
  const auto flat = launch({"--flat"});
  EXPECT_TRUE(has(command_of(flat), "vfio-pci,host=0000:01:00.1,addr=0x10.1")) << flat.output;
}

TEST_F(GpuLaunchCli, DeviceOptionsReachTheirFunctionAndAreChecked) {
  const auto result =
      launch({"--device-opt", "0000:01:00.0:x-vga=on", "--device-opt", "01:00.1:rombar=0"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto command = command_of(result);
  EXPECT_TRUE(has(command,
                  "vfio-pci,host=0000:01:00.0,bus=vfiokit-rp0,addr=0.0,multifunction=on,x-vga=on"));
  EXPECT_TRUE(has(command, "vfio-pci,host=0000:01:00.1,bus=vfiokit-rp0,addr=0.1,rombar=0"));
  // x-vga on the audio function, options for a device the guest does not get, no KEY=VALUE.
  const auto audio_vga = launch({"--device-opt", "0000:01:00.1:x-vga=on"});
  EXPECT_EQ(audio_vga.exit_status, 2);
  EXPECT_NE(audio_vga.output.find("not a VGA controller (class 0403)"), std::string::npos)
      << audio_vga.output;
  const auto elsewhere = launch({"--device-opt", "0000:00:01.0:rombar=0"});
  EXPECT_EQ(elsewhere.exit_status, 2);
  EXPECT_NE(elsewhere.output.find("which this guest does not get"), std::string::npos)
      << elsewhere.output;
  EXPECT_EQ(launch({"--device-opt", "0000:01:00.0"}).exit_status, 2);
}

TEST_F(GpuLaunchCli, UefiUsesOvmfAndTheNamedGuestsOwnVariablesAndADryRunCreatesNothing) {
  const auto missing = launch({"--firmware", "uefi"});
  EXPECT_EQ(missing.exit_status, 2);
  EXPECT_NE(missing.output.find("apt-get install ovmf"), std::string::npos) << missing.output;
  install_ovmf();
  const auto result = launch({"--firmware", "uefi", "--name", "win"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto command = command_of(result);
  const std::string code = (copy.root() / "usr/share/OVMF/OVMF_CODE_4M.fd").string();
  const std::string vars = (copy.root() / "var/lib/vfiokit/guests/win/OVMF_VARS.fd").string();
  EXPECT_TRUE(has(command, "if=pflash,format=raw,unit=0,readonly=on,file=" + code))
      << result.output;
  EXPECT_TRUE(has(command, "if=pflash,format=raw,unit=1,file=" + vars)) << result.output;
  EXPECT_TRUE(has(command, "guest=win,debug-threads=on"));
  EXPECT_FALSE(std::filesystem::exists(copy.root() / "var/lib/vfiokit"));
  EXPECT_EQ(launch({"--firmware", "uefi", "--name", "../etc"}).exit_status, 2);
  const auto both = launch({"--firmware", "uefi"}, {"-M", "q35", "-bios", "/x.fd"});
  EXPECT_EQ(both.exit_status, 2);
  EXPECT_NE(both.output.find("give firmware themselves"), std::string::npos) << both.output;
}

TEST_F(GpuLaunchCli, HugepagesAreCheckedBeforeAnythingMoves) {
  const auto none = launch({"--hugepages", "2M"});
  EXPECT_NE(none.exit_status, 0) << none.output;
  hugepage_pool(1024);  // 2 GiB of 2M pages: not enough for -m 4G
  const auto short_of_pages = launch({"--hugepages", "2M"});
  EXPECT_EQ(short_of_pages.exit_status, 3) << short_of_pages.output;
  EXPECT_NE(short_of_pages.output.find("2048"), std::string::npos) << short_of_pages.output;
  hugepage_pool(2048);
  const auto result = launch({"--hugepages", "2M"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  EXPECT_TRUE(has(command_of(result),
                  "memory-backend-memfd,id=vfiokit-ram,size=4G,hugetlb=on,hugetlbsize=2M,"
                  "prealloc=on"));
}

TEST_F(GpuLaunchCli, PinningNeedsOnlineCpusAndPausesQemuForIt) {
  write("sys/devices/system/cpu/online", "0-3\n");
  // Without --cpus or -smp QEMU gives one vCPU; with the user's own -smp, one CPU per vCPU.
  EXPECT_EQ(launch({"--pin", "0-1"}).exit_status, 2);
  EXPECT_EQ(launch({"--pin", "1"}).exit_status, 0);
  EXPECT_EQ(launch({"--pin", "0-3"}, {"-M", "q35", "-m", "4G", "-smp", "4,cores=2,threads=2"})
                .exit_status,
            0);
  const auto offline = launch({"--cpus", "2", "--pin", "3-4"});
  EXPECT_EQ(offline.exit_status, 2);
  EXPECT_NE(offline.output.find('4'), std::string::npos) << offline.output;
  EXPECT_EQ(launch({"--cpus", "3", "--pin", "0-1"}).exit_status, 2);
  const auto result = launch({"--cpus", "2", "--pin", "2-3", "--emulator-pin", "0"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto command = command_of(result);
  EXPECT_TRUE(has(command, "-S"));
  const auto qmp = std::find(command.begin(), command.end(), "-qmp");
  ASSERT_NE(qmp, command.end());
  // In a private folder of the run, made (mkdtemp, 0700) only when it runs.
  EXPECT_EQ(qmp[1], "unix:" + (copy.root() / "run/vfiokit/launch-XXXXXX/qmp.sock").string() +
                        ",server=on,wait=off");
}

}  // namespace
}  // namespace vfiokit
