// What only the arm64 rig shows (tools/rig/run --arch arm64, docs/hil.md "The arm64 rig"): the
// kernel's IOMMU is an Arm SMMUv3, MSIs go through the GICv3 ITS, doctor and check read both as
// ready, nvme and edu pass the selftest stages that need no KVM, and a driverless device on a
// device-tree host gets its IOMMU group only when a driver (vfio-pci) probes it; with
// --virtualization, KVM as far as vfiokit takes it on arm64. Registered only in an aarch64 build
// (tests/CMakeLists.txt, arm64-rig).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/kvm/vm.h"

namespace vfiokit::hil {
namespace {

const std::filesystem::path kDevices = "/sys/bus/pci/devices";

// The check of `vfiokit doctor --json` or `vfiokit check --json` with this id.
cli::Json check_with_id(const cli::Json& checks, std::string_view id) {
  for (const auto& check : checks) {
    if (check["id"] == id) return check;
  }
  return {};
}

TEST(Arm64Rig, TheIommuIsAnSmmuV3AndMsisGoThroughTheIts) {
  VFIOKIT_REQUIRE_RIG();
  std::vector<std::string> smmus;
  for (const auto& name : list_dir("/sys/class/iommu")) {
    if (name.starts_with("smmu3.")) smmus.push_back(name);
  }
  EXPECT_EQ(smmus.size(), 1u) << "no arm-smmu-v3 unit in /sys/class/iommu";
  const auto nvme = find_pci_function(kNvmeVendor, kNvmeDevice);
  ASSERT_TRUE(nvme);
  // The nvme driver's queues use MSI-X vectors of the ITS's per-device domain.
  EXPECT_NE(read_file("/proc/interrupts").find(" ITS-PCI-MSIX-" + *nvme), std::string::npos)
      << read_file("/proc/interrupts");
  EXPECT_EQ(read_file("/proc/interrupts").find(" IR-"), std::string::npos);
}

TEST(Arm64Rig, DoctorAndCheckReadTheSmmuAndTheItsAsReady) {
  VFIOKIT_REQUIRE_RIG();
  const auto doctor = vfiokit({"doctor", "--json"});
  const auto json = conforming_json(doctor, "doctor.json");
  const auto iommu = check_with_id(json["checks"], "iommu");
  EXPECT_EQ(iommu["status"], "pass") << doctor.output;
  EXPECT_TRUE(iommu["summary"].get<std::string>().starts_with("Arm SMMUv3 active (smmu3."))
      << iommu["summary"];
  const auto msi = check_with_id(json["checks"], "interrupt-remapping");
  EXPECT_EQ(msi["status"], "pass") << doctor.output;
  EXPECT_NE(msi["summary"].get<std::string>().find("GICv3 ITS"), std::string::npos);
  EXPECT_EQ(check_with_id(json["checks"], "vfio-container")["status"], "pass");

  const auto nvme = find_pci_function(kNvmeVendor, kNvmeDevice);
  ASSERT_TRUE(nvme);
  const auto check = vfiokit({"check", *nvme, "--json"});
  const auto checked = conforming_json(check, "check.json");
  const std::string text = checked.dump();
  EXPECT_NE(text.find("MSIs isolated by the GICv3 ITS"), std::string::npos) << check.output;
}

// The selftest's stages that need no KVM (config, bar, dma, irq-eventfd) pass on a device on
// vfio-pci; irq-kvm is skipped, saying why: its guest is an x86 program.
void expect_selftest_stages_pass(const std::string& bdf) {
  const auto selftest = vfiokit({"selftest", bdf, "--json"});
  const auto json = conforming_json(selftest, "selftest.json");
  ASSERT_EQ(json["stages"].size(), 5u) << selftest.output;
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(json["stages"][i]["status"], "ok") << json["stages"][i].dump();
  }
  EXPECT_EQ(json["stages"][4]["stage"], "irq-kvm");
  EXPECT_EQ(json["stages"][4]["status"], "skipped");
  EXPECT_NE(json["stages"][4]["detail"].get<std::string>().find("not on this architecture"),
            std::string::npos)
      << json["stages"][4].dump();
  EXPECT_EQ(json["passed"], true);
  EXPECT_EQ(selftest.exit_status, 0) << selftest.output;
}

TEST(Arm64Rig, NvmeBindsPassesTheSelftestAndGoesHome) {
  VFIOKIT_REQUIRE_RIG();
  const auto nvme = find_pci_function(kNvmeVendor, kNvmeDevice);
  ASSERT_TRUE(nvme);
  const auto bind = vfiokit({"bind", *nvme});
  ASSERT_EQ(bind.exit_status, 0) << bind.output;
  EXPECT_EQ(driver_of(*nvme), "vfio-pci");
  expect_selftest_stages_pass(*nvme);
  const auto unbind = vfiokit({"unbind", *nvme});
  ASSERT_EQ(unbind.exit_status, 0) << unbind.output;
  EXPECT_EQ(driver_of(*nvme), "nvme");
  EXPECT_TRUE(wait_for_path("/dev/nvme0n1", true, 5000));
}

// On a device-tree arm64 host the kernel configures a PCI device's IOMMU (of_iommu_configure)
// when a driver probes it, so edu, which has no host driver, starts without an IOMMU group.
// `check` warns that bind will let vfio-pci probe it; `bind` does, and goes on once the group edu
// joined holds nothing else; unbind leaves it driverless, as it was.
TEST(Arm64Rig, EduWithoutAGroupIsBoundThroughVfioPcisProbe) {
  VFIOKIT_REQUIRE_RIG();
  const auto edu = find_pci_function(kEduVendor, kEduDevice);
  ASSERT_TRUE(edu);
  ASSERT_EQ(driver_of(*edu), "(none)");
  EXPECT_FALSE(read_link_name(kDevices / *edu / "iommu_group"))
      << "edu has a group before any driver probed it: the kernel's behaviour changed";
  const auto check = vfiokit({"check", *edu});
  EXPECT_EQ(check.exit_status, 0) << check.output;
  EXPECT_NE(check.output.find("no IOMMU group yet"), std::string::npos) << check.output;
  const auto bind = vfiokit({"bind", *edu});
  ASSERT_EQ(bind.exit_status, 0) << bind.output;
  EXPECT_NE(bind.output.find("joined IOMMU group"), std::string::npos) << bind.output;
  EXPECT_EQ(driver_of(*edu), "vfio-pci");
  const auto group = read_link_name(kDevices / *edu / "iommu_group");
  ASSERT_TRUE(group);
  EXPECT_EQ(list_dir("/sys/kernel/iommu_groups/" + *group + "/devices"),
            std::vector<std::string>{*edu});
  EXPECT_TRUE(std::filesystem::exists("/dev/vfio/" + *group));
  expect_selftest_stages_pass(*edu);
  const auto unbind = vfiokit({"unbind", *edu});
  ASSERT_EQ(unbind.exit_status, 0) << unbind.output;
  EXPECT_EQ(driver_of(*edu), "(none)");
  EXPECT_FALSE(std::filesystem::exists("/dev/vfio/" + *group));
}

// KVM on arm64, as far as vfiokit goes there: booted with --virtualization (EL2 under TCG, so the
// guest kernel's KVM comes up with a vGICv3), doctor finds /dev/kvm and creates a VM; vfiokit's
// VM takes memory and a vCPU; its irqchip, x86's, is refused by name (an arm64 VM needs a vGICv3
// with an ITS, which vfiokit does not create yet), so GSI routes and irqfds stay x86-only.
TEST(Arm64RigKvm, AVmWithMemoryAndAVcpuAndTheX86IrqchipRefusedByName) {
  VFIOKIT_REQUIRE_RIG();
  ASSERT_EQ(std::getenv("VFIOKIT_RIG_VIRTUALIZATION") != nullptr, true)
      << "booted without --virtualization: this rig has no /dev/kvm";
  const auto doctor = vfiokit({"doctor", "--json"});
  const auto json = conforming_json(doctor, "doctor.json");
  EXPECT_EQ(check_with_id(json["checks"], "kvm")["status"], "pass") << doctor.output;
  EXPECT_EQ(check_with_id(json["checks"], "kvm-features")["status"], "pass") << doctor.output;

  const kvm::KvmSystem kvm = kvm::KvmSystem::open();
  kvm::Vm vm = kvm.create_vm();
  constexpr std::size_t kRam = 2 * 1024 * 1024;
  void* ram = ::mmap(nullptr, kRam, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ram, MAP_FAILED) << strerror(errno);
  const MappedMemory memory(ram, kRam);
  vm.add_memory(0, 0x40000000, memory.bytes());
  EXPECT_EQ(vm.memory().size(), 1u);
  const kvm::Vcpu vcpu = vm.create_vcpu(0);
  try {
    vm.create_irqchip();
    FAIL() << "the x86 irqchip was not refused on arm64";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not on this architecture"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(vm.has_irqchip());
}

}  // namespace
}  // namespace vfiokit::hil
