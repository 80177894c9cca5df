// What only the arm64 rig shows (tools/rig/run --arch arm64, docs/hil.md "The arm64 rig"): the
// kernel's IOMMU is an Arm SMMUv3, MSIs go through the GICv3 ITS, doctor and check read both as
// ready, nvme and edu pass the selftest stages that need no KVM, and a driverless device on a
// device-tree host gets its IOMMU group only when a driver (vfio-pci) probes it; with
// --virtualization, KVM as far as vfiokit takes it on arm64. Registered only in an aarch64 build
// (tests/CMakeLists.txt, arm64-rig).
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/base/text.h"
#include "vfiokit/base/unique_fd.h"
#include "vfiokit/kvm/gic.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/kvm/vm.h"
#include "vfiokit/msix/wiring.h"
#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/payloads/payloads.h"
#include "vfiokit/vfio/open.h"

namespace vfiokit::hil {
namespace {

using namespace std::chrono_literals;

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
// vfio-pci. (This boot has no /dev/kvm: irq-kvm runs in Arm64RigKvm's, which has.)
void expect_selftest_stages_pass(const std::string& bdf) {
  const auto selftest = vfiokit({"selftest", bdf, "--json", "--stage", "config", "--stage", "bar",
                                 "--stage", "dma", "--stage", "irq-eventfd"});
  const auto json = conforming_json(selftest, "selftest.json");
  ASSERT_EQ(json["stages"].size(), 4u) << selftest.output;
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(json["stages"][i]["status"], "ok") << json["stages"][i].dump();
  }
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

// KVM on arm64: booted with --virtualization (EL2 under TCG, so the guest kernel's KVM comes up
// with a vGICv3 and emulates an ITS), doctor finds /dev/kvm and creates a VM; vfiokit's VM takes
// memory, a vCPU and its irqchip (a vGICv3 with an ITS, kvm/gic.h), which takes MSI routes that
// carry a device ID, and irqfds on them.
TEST(Arm64RigKvm, AVmWithMemoryAVcpuAndAVgicWithAnIts) {
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
  vm.create_irqchip();
  EXPECT_TRUE(vm.has_irqchip());
  const kvm::Vcpu vcpu = vm.create_vcpu(0);
  vm.finish_irqchip();
  // After the vGIC is finished no vCPU can join (its redistributors are fixed).
  EXPECT_THROW(static_cast<void>(vm.create_vcpu(1)), Error);
  msix::RouteTable routes(vm, /*keep_irqchip_routes=*/false);
  const auto gsi = routes.gsis().allocate(1).front();
  routes.stage(gsi, kvm::its_msi(VFIOKIT_GUEST_DEVICE_DEVFN, 0));
  routes.commit();
  const UniqueFd event(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(event.valid()) << strerror(errno);
  vm.assign_irqfd(event.get(), gsi);
  vm.deassign_irqfd(event.get(), gsi);
  // An x86 payload is refused by name before anything runs: only irq-probe is built for arm64.
  try {
    payloads::PayloadGuest x86(kvm, payloads::find("edu-dma")->image);
    FAIL() << "an x86 image was accepted on arm64";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not on this architecture"), std::string::npos)
        << e.what();
  }
}

// irq-probe's arm64 build in a VM with a vGICv3 and an ITS: nvme's 65 MSI-X vectors, fired by
// VFIO's loopback trigger, reach the guest through irqfds and MSI routes that carry the device ID,
// each as the LPI the guest's ITS maps its event to, exactly once. Then a route retargeted to a
// device ID the guest never mapped delivers nothing (the ITS drops it), and back it delivers.
TEST(Arm64RigKvm, NvmeMsixVectorsReachTheGuestAsLpisThroughTheIts) {
  VFIOKIT_REQUIRE_RIG();
  const auto nvme = find_pci_function(kNvmeVendor, kNvmeDevice);
  ASSERT_TRUE(nvme) << "the rig has no nvme";
  ASSERT_EQ(vfiokit({"bind", *nvme}).exit_status, 0);
  {
    const vfio::OpenedDevice opened = vfio::open_vfio_device({}, *pci::parse_bdf(*nvme));
    const kvm::KvmSystem kvm = kvm::KvmSystem::open();
    constexpr std::uint32_t kDevice = VFIOKIT_GUEST_DEVICE_DEVFN;  // 00:01.0 on the guest's bus
    constexpr std::uint32_t kVectors = 65;
    payloads::PayloadGuest guest(kvm, payloads::find("irq-probe")->image,
                                 payloads::irq_probe_options(kVectors));
    EXPECT_TRUE(guest.vm().has_irqchip());
    std::vector<msix::MsiMessage> messages;
    for (std::uint32_t v = 0; v < kVectors; ++v) {
      messages.push_back(payloads::irq_probe_message(v));
      EXPECT_EQ(messages.back(), kvm::its_msi(kDevice, v));
    }
    msix::MsixWiring wiring(opened.device, VFIO_PCI_MSIX_IRQ_INDEX, guest.routes());
    wiring.wire(messages);
    guest.start();
    ASSERT_TRUE(guest.wait_for(VFIOKIT_MAILBOX_READY, 60s)) << guest.log();
    auto next_vector = [&](std::chrono::milliseconds timeout) -> std::string {
      const auto event = guest.wait_for(VFIOKIT_MAILBOX_VECTOR, timeout);
      if (!event) return "none";
      return hex(event->value & 0xff) + "#" + std::to_string(event->value >> 8);
    };
    for (std::uint32_t v = 0; v < kVectors; ++v) wiring.vectors().trigger(v);
    std::set<std::string> seen;
    for (std::uint32_t i = 0; i < kVectors; ++i) seen.insert(next_vector(20s));
    std::set<std::string> expected;
    for (std::uint32_t v = 0; v < kVectors; ++v) expected.insert(hex(0x30 + v) + "#1");
    EXPECT_EQ(seen, expected) << guest.log();
    EXPECT_TRUE(guest.wait_for(VFIOKIT_MAILBOX_VALUE, 10s)) << "irq-probe did not see them all";
    EXPECT_EQ(next_vector(500ms), "none");

    wiring.retarget(3, kvm::its_msi(kDevice + 1, 3));
    wiring.vectors().trigger(3);
    EXPECT_EQ(next_vector(1s), "none") << "an event of an unmapped device ID was delivered";
    wiring.retarget(3, kvm::its_msi(kDevice, 3));
    wiring.vectors().trigger(3);
    EXPECT_EQ(next_vector(20s), "0x33#2");
    // Stopped, the vCPU says where it is (KVM_GET_ONE_REG): in irq-probe's image.
    guest.stop();
    const kvm::VcpuState state = guest.vcpu_state();
    EXPECT_TRUE(state.known);
    EXPECT_GE(state.rip, VFIOKIT_PAYLOAD_ADDRESS);
    EXPECT_LT(state.rip, VFIOKIT_PAYLOAD_ADDRESS + payloads::find("irq-probe")->image.size());
  }
  // The selftest's irq-kvm stage: the same wiring, then the real thing: nvme's Identify
  // completion, an MSI-X write through the SMMU to the host's ITS, reaches the guest's LPI too.
  const auto selftest = vfiokit({"selftest", *nvme, "--json", "--stage", "irq-kvm"});
  const auto json = conforming_json(selftest, "selftest.json");
  ASSERT_EQ(json["stages"].size(), 1u) << selftest.output;
  EXPECT_EQ(json["stages"][0]["status"], "ok") << json["stages"][0].dump();
  EXPECT_NE(json["stages"][0]["detail"].get<std::string>().find("Identify completion"),
            std::string::npos)
      << json["stages"][0].dump();
  EXPECT_EQ(selftest.exit_status, 0) << selftest.output;
  EXPECT_EQ(vfiokit({"restore", "--all"}).exit_status, 0);
}

// The same stage on edu, whose one MSI vector (plain MSI, not MSI-X) goes through the ITS as
// event 0, and whose own MSI, raised through its register, reaches the guest's LPI as well.
TEST(Arm64RigKvm, EdusOwnMsiReachesTheGuestThroughTheIts) {
  VFIOKIT_REQUIRE_RIG();
  const auto edu = find_pci_function(kEduVendor, kEduDevice);
  ASSERT_TRUE(edu) << "the rig has no edu";
  const auto bind = vfiokit({"bind", *edu});
  ASSERT_EQ(bind.exit_status, 0) << bind.output;
  const auto selftest = vfiokit({"selftest", *edu, "--json", "--stage", "irq-kvm"});
  const auto json = conforming_json(selftest, "selftest.json");
  ASSERT_EQ(json["stages"].size(), 1u) << selftest.output;
  EXPECT_EQ(json["stages"][0]["status"], "ok") << json["stages"][0].dump();
  EXPECT_NE(json["stages"][0]["detail"].get<std::string>().find("edu's own MSI"), std::string::npos)
      << json["stages"][0].dump();
  EXPECT_EQ(vfiokit({"unbind", *edu}).exit_status, 0);
}

}  // namespace
}  // namespace vfiokit::hil
