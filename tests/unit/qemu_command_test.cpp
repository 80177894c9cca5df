// `launch --qemu`'s command line: what the user's QEMU arguments already say (machine, RAM,
// their own vfio-pci devices) and the golden command lines vfiokit builds around them: GPUs
// with audio behind root ports, romfile and other per-device options, i440fx, user-written
// devices, UEFI, hugepages, vCPUs and the QMP socket.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "vfiokit/base/error.h"
#include "vfiokit/vmm/qemu_command.h"

namespace vfiokit::vmm {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
using Args = std::vector<std::string>;

pci::Bdf parse(const char* text) { return pci::parse_bdf_or_throw(text); }

constexpr std::uint32_t kVga = 0x030000;
constexpr std::uint32_t kAudio = 0x040300;
constexpr std::uint32_t kNvme = 0x010802;

QemuDevice device(const char* bdf, std::uint32_t class_code = kNvme,
                  std::vector<std::string> options = {}) {
  return {parse(bdf), class_code, std::move(options)};
}

QemuLaunch launch_of(Args arguments, std::vector<QemuDevice> devices) {
  QemuLaunch launch;
  launch.binary = "qemu";
  launch.user_arguments = std::move(arguments);
  launch.devices = std::move(devices);
  return launch;
}

Args command_of(const QemuLaunch& launch) { return build_qemu_command(launch).arguments; }

// The message of the usage Error `launch` throws, or "" when it builds.
std::string refusal(const QemuLaunch& launch) {
  try {
    build_qemu_command(launch);
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), ErrorKind::usage) << error.what();
    return error.what();
  }
  return "";
}

TEST(QemuMemory, ReadsMAsQemuDoes) {
  EXPECT_EQ(guest_memory_bytes({"-M", "q35"}), 128 * kMiB);  // QEMU's default
  EXPECT_EQ(guest_memory_bytes({"-m", "512"}), 512 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "8G"}), 8192 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "8g"}), 8192 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "262144K"}), 256 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "1T"}), kMiB * kMiB);
  // Memory that can be hot-plugged up to maxmem is pinned when it comes: the larger counts.
  EXPECT_EQ(guest_memory_bytes({"-m", "size=4G,slots=4,maxmem=16G"}), 16384 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "size=2G"}), 2048 * kMiB);
  // The last -m wins.
  EXPECT_EQ(guest_memory_bytes({"-m", "1G", "-accel", "kvm", "-m", "2G"}), 2048 * kMiB);
}

TEST(QemuMemory, WhatQemuWouldRefuseIsNotGuessed) {
  EXPECT_FALSE(guest_memory_bytes({"-m", "lots"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", "1.5G"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", "8Q"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", "size=4G,colour=blue"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", "99999999999999999T"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", ""}));
}

TEST(QemuMemory, TheInitialSizeIsSizeNotMaxmem) {
  EXPECT_EQ(initial_memory_bytes({"-m", "size=4G,slots=4,maxmem=16G"}), 4096 * kMiB);
  EXPECT_EQ(initial_memory_bytes({"-m", "256"}), 256 * kMiB);
  EXPECT_EQ(initial_memory_bytes({}), 128 * kMiB);
  EXPECT_FALSE(initial_memory_bytes({"-m", "4G,lots"}));
}

TEST(QemuArguments, OptionsAreSplitAtSingleCommasOnly) {
  EXPECT_EQ(split_qemu_options("vfio-pci,host=01:00.0,romfile=/a,,b"),
            (Args{"vfio-pci", "host=01:00.0", "romfile=/a,b"}));
  EXPECT_EQ(split_qemu_options(""), Args{""});
  EXPECT_EQ(qemu_option({"a=1", "b=2", "a=3"}, "a"), "3");  // the last wins, as in QEMU
  EXPECT_FALSE(qemu_option({"ab=1"}, "a"));
  EXPECT_EQ(option_values({"-m", "1G", "--m", "2G", "-m"}, "-m"),
            (std::vector<std::string_view>{"1G", "2G"}));
  EXPECT_TRUE(has_flag({"-S"}, "-S"));
  EXPECT_TRUE(has_flag({"--S"}, "-S"));
  EXPECT_FALSE(has_flag({"-Sx"}, "-S"));
}

TEST(QemuArguments, TheMachineIsReadAsQemuMergesIt) {
  EXPECT_EQ(guest_machine({}).type, "pc");  // QEMU's x86_64 default: i440fx
  EXPECT_EQ(guest_machine({}).family, MachineFamily::i440fx);
  EXPECT_EQ(guest_machine({"-M", "q35"}).family, MachineFamily::q35);
  EXPECT_EQ(guest_machine({"-machine", "pc-q35-7.2,accel=kvm"}).family, MachineFamily::q35);
  EXPECT_EQ(guest_machine({"-machine", "type=q35"}).family, MachineFamily::q35);
  EXPECT_EQ(guest_machine({"-M", "pc-i440fx-7.2"}).family, MachineFamily::i440fx);
  EXPECT_EQ(guest_machine({"-M", "microvm"}).family, MachineFamily::other);
  // A later -machine without a type keeps the earlier type; a later type replaces it.
  EXPECT_EQ(guest_machine({"-M", "q35", "-machine", "accel=kvm"}).family, MachineFamily::q35);
  EXPECT_EQ(guest_machine({"-M", "q35", "--machine", "pc"}).family, MachineFamily::i440fx);
  EXPECT_FALSE(guest_machine({"-M", "q35"}).has_memory_backend);
  EXPECT_TRUE(guest_machine({"-M", "q35,memory-backend=m0"}).has_memory_backend);
}

TEST(QemuArguments, UserWrittenVfioDevicesAreFoundInEveryForm) {
  const auto devices = user_vfio_devices(
      {"-device", "vfio-pci,host=01:00.0,x-vga=on", "-device", "virtio-net-pci,host=nothing",
       "-device", "driver=vfio-pci,host=0000:02:00.0", "-device",
       "vfio-pci-nohotplug,sysfsdev=/sys/bus/pci/devices/0000:03:00.1", "-device",
       "{\"driver\":\"e1000\"}"});
  ASSERT_EQ(devices.size(), 3u);
  EXPECT_EQ(devices[0].host, parse("0000:01:00.0"));
  EXPECT_EQ(devices[1].host, parse("0000:02:00.0"));
  EXPECT_EQ(devices[2].host, parse("0000:03:00.1"));
}

TEST(QemuArguments, AUserVfioDeviceVfiokitCannotReadIsAnError) {
  for (const Args& arguments :
       {Args{"-device", "vfio-pci,id=gpu"}, Args{"-device", "vfio-pci,host=gpu"},
        Args{"-device", "vfio-pci,sysfsdev=/sys/devices/nothing"},
        Args{"-device", "{\"driver\":\"vfio-pci\",\"host\":\"01:00.0\"}"},
        Args{"-device", "vfio-pci,host=01:00.0", "-device", "vfio-pci,host=0000:01:00.0"}}) {
    try {
      user_vfio_devices(arguments);
      ADD_FAILURE() << "accepted " << arguments[1];
    } catch (const Error& error) {
      EXPECT_EQ(error.kind(), ErrorKind::usage);
      EXPECT_FALSE(error.hint().empty()) << error.what();
    }
  }
}

// i440fx (QEMU's default machine): a lone function is left for QEMU to place, a slot's
// functions share one root-bus slot from 0x10 on.
TEST(QemuCommand, OnI440fxALoneFunctionIsLeftForQemuToPlace) {
  EXPECT_EQ(command_of(launch_of({"-m", "1G"}, {device("0000:00:01.0")})),
            (Args{"qemu", "-m", "1G", "-device", "vfio-pci,host=0000:00:01.0"}));
}

TEST(QemuCommand, OnI440fxAGpuAndItsAudioShareOneGuestSlot) {
  const auto built = build_qemu_command(launch_of(
      {}, {device("0000:01:00.1", kAudio), device("0000:01:00.0", kVga), device("0000:02:00.0")}));
  EXPECT_EQ(
      built.arguments,
      (Args{"qemu", "-device", "vfio-pci,host=0000:01:00.0,addr=0x10.0,multifunction=on", "-device",
            "vfio-pci,host=0000:01:00.1,addr=0x10.1", "-device", "vfio-pci,host=0000:02:00.0"}));
  EXPECT_EQ(built.placements.front(),
            (GuestPlacement{parse("0000:01:00.0"), "on the root bus at slot 0x10.0"}));
}

TEST(QemuCommand, OnI440fxTwoMultifunctionSlotsGetTwoGuestSlots) {
  const auto command = command_of(launch_of({}, {device("0000:03:00.0"), device("0000:03:00.1"),
                                                 device("0000:04:00.0"), device("0000:04:00.3")}));
  ASSERT_EQ(command.size(), 9u);
  EXPECT_EQ(command[6], "vfio-pci,host=0000:04:00.0,addr=0x11.0,multifunction=on");
  EXPECT_EQ(command[8], "vfio-pci,host=0000:04:00.3,addr=0x11.3");
}

TEST(QemuCommand, MoreMultifunctionSlotsThanGuestSlotsIsAnError) {
  std::vector<QemuDevice> devices;
  for (unsigned bus = 1; bus <= 17; ++bus) {
    for (unsigned function = 0; function < 2; ++function) {
      devices.push_back(
          {pci::Bdf{0, static_cast<std::uint8_t>(bus), 0, static_cast<std::uint8_t>(function)},
           kNvme,
           {}});
    }
  }
  EXPECT_NE(refusal(launch_of({}, devices)), "");
  devices.resize(32);  // 16 slots: 0x10..0x1f
  EXPECT_EQ(command_of(launch_of({}, devices)).back(), "vfio-pci,host=0000:10:00.1,addr=0x1f.1");
}

// q35: a root port per host slot, its functions behind it, the GPU's audio beside it.
TEST(QemuCommand, OnQ35AGpuWithAudioSitsBehindItsOwnRootPort) {
  const auto built = build_qemu_command(launch_of(
      {"-M", "q35", "-m", "8G"},
      {device("0000:01:00.1", kAudio), device("0000:01:00.0", kVga), device("0000:05:00.0")}));
  EXPECT_EQ(built.arguments,
            (Args{"qemu", "-M", "q35", "-m", "8G", "-device",
                  "pcie-root-port,id=vfiokit-rp0,chassis=1,slot=0", "-device",
                  "vfio-pci,host=0000:01:00.0,bus=vfiokit-rp0,addr=0.0,multifunction=on", "-device",
                  "vfio-pci,host=0000:01:00.1,bus=vfiokit-rp0,addr=0.1", "-device",
                  "pcie-root-port,id=vfiokit-rp1,chassis=2,slot=0", "-device",
                  "vfio-pci,host=0000:05:00.0,bus=vfiokit-rp1,addr=0.0"}));
  EXPECT_EQ(built.placements,
            (std::vector<GuestPlacement>{
                {parse("0000:01:00.0"), "function 0 behind pcie-root-port vfiokit-rp0"},
                {parse("0000:01:00.1"), "function 1 behind pcie-root-port vfiokit-rp0"},
                {parse("0000:05:00.0"), "function 0 behind pcie-root-port vfiokit-rp1"}}));
  EXPECT_FALSE(built.paused);
}

TEST(QemuCommand, OnQ35FlatKeepsDevicesOnTheRootBus) {
  auto launch = launch_of({"-M", "q35"}, {device("0000:05:00.0")});
  launch.flat = true;
  EXPECT_EQ(command_of(launch),
            (Args{"qemu", "-M", "q35", "-device", "vfio-pci,host=0000:05:00.0"}));
}

TEST(QemuCommand, RootPortsSkipTheChassisNumbersTheUserTook) {
  const auto command =
      command_of(launch_of({"-M", "q35", "-device", "pcie-root-port,id=mine,chassis=1,slot=0"},
                           {device("0000:05:00.0"), device("0000:06:00.0")}));
  EXPECT_EQ(command[6], "pcie-root-port,id=vfiokit-rp0,chassis=2,slot=0");
  EXPECT_EQ(command[10], "pcie-root-port,id=vfiokit-rp1,chassis=3,slot=0");
  // Numbers as QEMU reads them: 0x2 is chassis 2.
  const auto hex = command_of(launch_of({"-M", "q35", "-device", "pcie-root-port,id=a,chassis=0x1",
                                         "-device", "pcie-root-port,id=b,chassis=0x2"},
                                        {device("0000:05:00.0")}));
  EXPECT_EQ(hex[8], "pcie-root-port,id=vfiokit-rp0,chassis=3,slot=0");
}

TEST(QemuCommand, ASlotWithoutFunctionZeroIsRenumberedFromZero) {
  // Function 0 stays on the host (another group, or not wanted): the guest finds functions only
  // behind a function 0.
  const auto command = command_of(
      launch_of({"-M", "q35"}, {device("0000:01:00.2", kAudio), device("0000:01:00.3", kAudio)}));
  EXPECT_EQ(command[6], "vfio-pci,host=0000:01:00.2,bus=vfiokit-rp0,addr=0.0,multifunction=on");
  EXPECT_EQ(command[8], "vfio-pci,host=0000:01:00.3,bus=vfiokit-rp0,addr=0.1");
}

TEST(QemuCommand, AGpuWithARomfileAndXVgaGetsItsOptions) {
  const auto command = command_of(
      launch_of({"-M", "q35"},
                {device("0000:01:00.0", kVga, {"romfile=/var/lib/vfiokit/gpu,1.rom", "x-vga=on"}),
                 device("0000:01:00.1", kAudio)}));
  EXPECT_EQ(command, (Args{"qemu", "-M", "q35", "-device",
                           "pcie-root-port,id=vfiokit-rp0,chassis=1,slot=0", "-device",
                           "vfio-pci,host=0000:01:00.0,bus=vfiokit-rp0,addr=0.0,multifunction=on,"
                           "romfile=/var/lib/vfiokit/gpu,,1.rom,x-vga=on",
                           "-device", "vfio-pci,host=0000:01:00.1,bus=vfiokit-rp0,addr=0.1"}));
}

TEST(QemuCommand, DeviceOptionsAreCheckedAgainstTheDevice) {
  const auto with = [](std::uint32_t class_code, std::vector<std::string> options) {
    return refusal(
        launch_of({"-M", "q35"}, {device("0000:01:00.0", class_code, std::move(options))}));
  };
  EXPECT_NE(with(kNvme, {"x-vga=on"}).find("not a VGA controller (class 0108)"), std::string::npos);
  EXPECT_EQ(with(kVga, {"x-vga=on"}), "");
  EXPECT_EQ(with(kNvme, {"x-vga=off"}), "");
  // QEMU's booleans: y is on, 1 is no boolean at all (QEMU refuses it, not vfiokit).
  EXPECT_NE(with(kNvme, {"x-vga=y"}).find("not a VGA controller"), std::string::npos);
  EXPECT_EQ(with(kNvme, {"x-vga=1"}), "");
  EXPECT_EQ(with(0x030200, {"x-vga=off"}), "");  // a 3D controller without the legacy ranges
  EXPECT_NE(with(0x030200, {"x-vga=on"}).find("not a VGA controller (class 0302)"),
            std::string::npos);
  EXPECT_NE(with(kVga, {"rombar=2"}).find("rombar is 0 or 1"), std::string::npos);
  EXPECT_NE(with(kVga, {"rombar=0", "rombar=1"}).find("rombar twice"), std::string::npos);
  for (const char* reserved : {"host=01:00.1", "bus=pcie.0", "addr=0x5", "multifunction=on",
                               "sysfsdev=/x", "driver=vfio-pci"}) {
    EXPECT_NE(with(kVga, {reserved}).find("is vfiokit's to set"), std::string::npos) << reserved;
  }
  EXPECT_NE(with(kVga, {"x-vga"}).find("is not KEY=VALUE"), std::string::npos);
}

TEST(QemuCommand, ADeviceTheUserWroteIsLeftAsWrittenAndTheRestOfTheGroupIsAdded) {
  const auto built = build_qemu_command(
      launch_of({"-M", "q35", "-device", "vfio-pci,host=01:00.0,bus=pcie.0,addr=0x5"},
                {device("0000:01:00.0", kVga), device("0000:02:00.0")}));
  EXPECT_EQ(built.arguments,
            (Args{"qemu", "-M", "q35", "-device", "vfio-pci,host=01:00.0,bus=pcie.0,addr=0x5",
                  "-device", "pcie-root-port,id=vfiokit-rp0,chassis=1,slot=0", "-device",
                  "vfio-pci,host=0000:02:00.0,bus=vfiokit-rp0,addr=0.0"}));
  EXPECT_EQ(built.placements.front(),
            (GuestPlacement{parse("0000:01:00.0"), "as written in QEMU's arguments"}));
}

TEST(QemuCommand, AFunctionLeftOutBesideAUserWrittenOneIsNamed) {
  const auto message =
      refusal(launch_of({"-M", "q35", "-device", "vfio-pci,host=01:00.0,addr=0x5,multifunction=on"},
                        {device("0000:01:00.0", kVga), device("0000:01:00.1", kAudio)}));
  EXPECT_NE(message.find("place 0000:01:00.0 but not 0000:01:00.1"), std::string::npos) << message;
}

TEST(QemuCommand, AUserWrittenDeviceOutsideTheGroupIsNamed) {
  const auto message =
      refusal(launch_of({"-device", "vfio-pci,host=07:00.0"}, {device("0000:01:00.0")}));
  EXPECT_NE(message.find("pass 0000:07:00.0 through, but it is not in the IOMMU group"),
            std::string::npos)
      << message;
}

TEST(QemuCommand, OptionsForAUserWrittenDeviceBelongInItsDevice) {
  const auto message = refusal(launch_of({"-device", "vfio-pci,host=01:00.0"},
                                         {device("0000:01:00.0", kVga, {"rombar=0"})}));
  EXPECT_NE(message.find("whose -device vfio-pci is written"), std::string::npos) << message;
}

TEST(QemuCommand, UefiIsAPflashPairWithTheGuestsOwnVariables) {
  auto launch = launch_of({"-M", "q35"}, {});
  launch.uefi =
      UefiPflash{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/var/lib/vfiokit/guests/gpu/OVMF_VARS.fd"};
  EXPECT_EQ(command_of(launch),
            (Args{"qemu", "-M", "q35", "-drive",
                  "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
                  "-drive",
                  "if=pflash,format=raw,unit=1,file=/var/lib/vfiokit/guests/gpu/OVMF_VARS.fd"}));
  for (const Args& mine : {Args{"-bios", "/x.fd"}, Args{"-drive", "if=pflash,file=/x.fd"},
                           Args{"-pflash", "/x.fd"}, Args{"-M", "q35,pflash0=fw"}}) {
    launch.user_arguments = mine;
    EXPECT_NE(refusal(launch).find("give firmware themselves"), std::string::npos) << mine[0];
  }
}

TEST(QemuCommand, HugepagesBackTheGuestsRamWithAPreallocatedMemfd) {
  auto launch = launch_of({"-M", "q35", "-m", "size=4G,maxmem=8G,slots=2"}, {});
  launch.hugepage_size = 2 * kMiB;
  EXPECT_EQ(command_of(launch),
            (Args{"qemu", "-M", "q35", "-m", "size=4G,maxmem=8G,slots=2", "-object",
                  "memory-backend-memfd,id=vfiokit-ram,size=4G,hugetlb=on,hugetlbsize=2M,"
                  "prealloc=on",
                  "-machine", "memory-backend=vfiokit-ram"}));
  launch.user_arguments = {"-m", "256"};
  launch.hugepage_size = 1024 * kMiB;
  EXPECT_EQ(command_of(launch)[4],
            "memory-backend-memfd,id=vfiokit-ram,size=256M,hugetlb=on,hugetlbsize=1G,prealloc=on");
  launch.user_arguments = {"-mem-path", "/dev/hugepages"};
  EXPECT_NE(refusal(launch).find("back the guest's RAM themselves"), std::string::npos);
  launch.user_arguments = {"-M", "q35,memory-backend=mine"};
  EXPECT_NE(refusal(launch).find("back the guest's RAM themselves"), std::string::npos);
  launch.user_arguments = {"-m", "1G", "-numa", "node,memdev=ram0"};
  EXPECT_NE(refusal(launch).find("back the guest's RAM themselves"), std::string::npos);
  launch.user_arguments = {"-m", "1.5G"};
  EXPECT_NE(refusal(launch).find("needs a guest RAM size"), std::string::npos);
}

TEST(QemuCommand, VcpusNameAndQmpComeOnceAndPauseTheGuestForPinning) {
  auto launch = launch_of({"-M", "q35"}, {});
  launch.cpus = 4;
  launch.name = "gpu,1";
  launch.qmp_socket = "/run/vfiokit/qmp-42.sock";
  const auto built = build_qemu_command(launch);
  EXPECT_EQ(built.arguments,
            (Args{"qemu", "-M", "q35", "-smp", "4", "-name", "guest=gpu,,1,debug-threads=on",
                  "-qmp", "unix:/run/vfiokit/qmp-42.sock,server=on,wait=off", "-S"}));
  EXPECT_TRUE(built.paused);
  launch.user_arguments = {"-S"};
  launch.cpus.reset();
  launch.name.reset();
  const auto user_paused = build_qemu_command(launch);
  EXPECT_FALSE(user_paused.paused);  // the user's own -S: the guest starts when they say
  EXPECT_EQ(std::count(user_paused.arguments.begin(), user_paused.arguments.end(), "-S"), 1);
  launch.user_arguments = {"-smp", "2"};
  launch.cpus = 4;
  EXPECT_NE(refusal(launch).find("--cpus, and QEMU's arguments have -smp"), std::string::npos);
  launch.cpus.reset();
  launch.user_arguments = {"-name", "mine"};
  launch.name = "gpu";
  EXPECT_NE(refusal(launch).find("--name, and QEMU's arguments have -name"), std::string::npos);
}

TEST(DeviceOption, TheDeviceEndsAtTheLastColonBeforeTheFirstEquals) {
  const auto parsed = parse_device_option("0000:01:00.0:romfile=/a:b.rom,x-vga=on");
  EXPECT_EQ(parsed.device, "0000:01:00.0");
  EXPECT_EQ(parsed.options, (Args{"romfile=/a:b.rom", "x-vga=on"}));
  EXPECT_EQ(parse_device_option("01:00.0:romfile=/a,,b").options, Args{"romfile=/a,b"});
  EXPECT_EQ(parse_device_option("eth1:rombar=0").device, "eth1");
  for (const char* bad : {"0000:01:00.0", "romfile=/x", ":rombar=0", "01:00.0:rombar=0,",
                          "01:00.0:,x=1", "01:00.0:x"}) {
    EXPECT_THROW(parse_device_option(bad), Error) << bad;
  }
}

TEST(DeviceOption, ARomfileMustBeAReadableFile) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("vfiokit-romfile-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "gpu.rom") << "rom";
  const auto with = [&](std::string option) {
    try {
      check_device_option_files({device("0000:01:00.0", kVga, {std::move(option)})});
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  EXPECT_EQ(with("romfile=" + (dir / "gpu.rom").string()), "");
  EXPECT_EQ(with("romfile="), "");  // no ROM at all
  EXPECT_EQ(with("rombar=0"), "");
  EXPECT_EQ(with("romfile=efi-e1000e.rom"), "");  // QEMU finds a bare name in its data folders
  EXPECT_NE(with("romfile=" + (dir / "missing.rom").string()).find("missing.rom"),
            std::string::npos);
  EXPECT_NE(with("romfile=" + dir.string()).find("names a directory"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vfiokit::vmm
