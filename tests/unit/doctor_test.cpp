#include "tools/vfiokit/doctor.h"

#include <gtest/gtest.h>

#include <linux/vfio.h>
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "tests/unit/fixtures.h"

namespace vfiokit::cli {
namespace {

CheckResult find_check(const std::vector<CheckResult>& checks, std::string_view id) {
  const auto it =
      std::find_if(checks.begin(), checks.end(), [&](const CheckResult& c) { return c.id == id; });
  if (it == checks.end()) throw std::runtime_error("no check " + std::string(id));
  return *it;
}

// A host where everything is in order; each test breaks one thing.
DoctorFacts ready_host() {
  DoctorFacts facts;
  facts.iommu.units = {{"dmar0", iommu::IommuVendor::intel_vtd, true}};
  facts.iommu.groups = {0, 1, 2};
  facts.iommu.firmware_dmar = true;
  facts.iommu.remapped_interrupts_seen = true;
  facts.iommu.cpu_vendor = "GenuineIntel";
  facts.kernel_release = "6.12.0";
  facts.modules = {{"vfio", ModuleState::loaded},
                   {"vfio_iommu_type1", ModuleState::loaded},
                   {"vfio_pci", ModuleState::builtin}};
  facts.vfio_container = {true, true, 0, VFIO_API_VERSION, 0};
  facts.kvm = {true, true, 0, 12, 0};
  facts.kvm_features = kvm::KvmFeatures{65536 * 16, 65536 * 16, 3, true, true};
  facts.memlock = {RLIM_INFINITY, false};
  facts.hugepages = {{std::uint64_t{2} << 20, 512, 512, 0, 0},
                     {std::uint64_t{1} << 30, 0, 0, 0, 0}};
  facts.ovmf.firmware = vmm::OvmfFirmware{"4M", "/usr/share/OVMF/OVMF_CODE_4M.fd",
                                          "/usr/share/OVMF/OVMF_VARS_4M.fd", 3653632, 540672};
  return facts;
}

TEST(Doctor, ReadyHostPassesEverything) {
  const auto checks = assess_doctor_facts(ready_host());
  ASSERT_EQ(checks.size(), 9u);
  for (const auto& check : checks) {
    EXPECT_EQ(check.status, CheckStatus::pass) << check.id << ": " << check.summary;
    EXPECT_TRUE(check.fix.empty()) << check.id;
  }
  EXPECT_NE(find_check(checks, "iommu").summary.find("Intel VT-d active (dmar0), 3 IOMMU groups"),
            std::string::npos);
}

TEST(Doctor, VtdInFirmwareButOffInKernelSaysToAddIntelIommuOn) {
  DoctorFacts facts = ready_host();
  facts.iommu.units.clear();
  facts.iommu.groups.clear();
  facts.iommu.remapped_interrupts_seen = false;
  const auto checks = assess_doctor_facts(facts);
  EXPECT_EQ(find_check(checks, "iommu").status, CheckStatus::fail);
  EXPECT_NE(find_check(checks, "iommu").fix.find("add intel_iommu=on"), std::string::npos);
  EXPECT_EQ(find_check(checks, "interrupt-remapping").status, CheckStatus::fail);
}

TEST(Doctor, ExplicitIntelIommuOffIsNamed) {
  DoctorFacts facts = ready_host();
  facts.iommu.units.clear();
  facts.iommu.groups.clear();
  facts.iommu.kernel_cmdline = "ro intel_iommu=off";
  EXPECT_NE(find_check(assess_doctor_facts(facts), "iommu").fix.find("remove intel_iommu=off"),
            std::string::npos);
}

TEST(Doctor, AmdFirmwareGetsAmdAdvice) {
  DoctorFacts facts = ready_host();
  facts.iommu = {};
  facts.iommu.firmware_ivrs = true;
  facts.iommu.cpu_vendor = "AuthenticAMD";
  facts.iommu.kernel_cmdline = "amd_iommu=off";
  const auto& check = find_check(assess_doctor_facts(facts), "iommu");
  EXPECT_EQ(check.status, CheckStatus::fail);
  EXPECT_NE(check.summary.find("AMD-Vi"), std::string::npos);
  EXPECT_NE(check.fix.find("remove amd_iommu=off"), std::string::npos);
}

TEST(Doctor, NoIommuAtAllPointsAtFirmwareAndVirtualIommu) {
  DoctorFacts facts = ready_host();
  facts.iommu = {};
  const auto& check = find_check(assess_doctor_facts(facts), "iommu");
  EXPECT_EQ(check.status, CheckStatus::fail);
  EXPECT_NE(check.fix.find("VT-d"), std::string::npos);
  EXPECT_NE(check.fix.find("intel-iommu,intremap=on"), std::string::npos);
}

TEST(Doctor, InterruptRemappingStates) {
  DoctorFacts facts = ready_host();
  facts.iommu.remapped_interrupts_seen = false;
  EXPECT_EQ(find_check(assess_doctor_facts(facts), "interrupt-remapping").status,
            CheckStatus::fail);
  facts.iommu.kernel_cmdline = "intremap=off";
  EXPECT_NE(
      find_check(assess_doctor_facts(facts), "interrupt-remapping").fix.find("remove intremap=off"),
      std::string::npos);
  facts.iommu.allow_unsafe_interrupts = true;
  const auto& unsafe = find_check(assess_doctor_facts(facts), "interrupt-remapping");
  EXPECT_EQ(unsafe.status, CheckStatus::warn);
  EXPECT_NE(unsafe.summary.find("allow_unsafe_interrupts"), std::string::npos);
}

TEST(Doctor, ModulesThatCanBeLoadedWarnAndMissingOnesFail) {
  DoctorFacts facts = ready_host();
  facts.modules[2].state = ModuleState::available;
  auto check = find_check(assess_doctor_facts(facts), "vfio-modules");
  EXPECT_EQ(check.status, CheckStatus::warn);
  EXPECT_EQ(check.fix, "modprobe vfio_pci (vfiokit bind loads vfio-pci itself)");
  facts.modules[0].state = ModuleState::missing;
  check = find_check(assess_doctor_facts(facts), "vfio-modules");
  EXPECT_EQ(check.status, CheckStatus::fail);
  EXPECT_NE(check.fix.find("6.12.0"), std::string::npos);
}

TEST(Doctor, ContainerNodeProblems) {
  DoctorFacts facts = ready_host();
  facts.vfio_container = {};
  EXPECT_EQ(find_check(assess_doctor_facts(facts), "vfio-container").status, CheckStatus::fail);
  facts.vfio_container = {true, true, EACCES, std::nullopt, 0};
  const auto check = find_check(assess_doctor_facts(facts), "vfio-container");
  EXPECT_EQ(check.status, CheckStatus::fail);
  EXPECT_NE(check.fix.find("root"), std::string::npos);
  facts.vfio_container = {true, true, 0, 1, 0};
  EXPECT_EQ(find_check(assess_doctor_facts(facts), "vfio-container").status, CheckStatus::fail);
}

// doctor never contradicts itself: no "modprobe vfio" when the kernel has no vfio module.
TEST(Doctor, AMissingContainerNodeGetsAdviceThatFitsTheModule) {
  DoctorFacts facts = ready_host();
  facts.vfio_container = {};
  facts.modules[0].state = ModuleState::missing;
  auto check = find_check(assess_doctor_facts(facts), "vfio-container");
  EXPECT_EQ(check.fix.find("modprobe"), std::string::npos) << check.fix;
  EXPECT_NE(check.fix.find("no VFIO"), std::string::npos) << check.fix;
  facts.modules[0].state = ModuleState::available;
  EXPECT_EQ(find_check(assess_doctor_facts(facts), "vfio-container").fix,
            "modprobe vfio (it creates /dev/vfio/vfio)");
  facts.modules[0].state = ModuleState::builtin;
  check = find_check(assess_doctor_facts(facts), "vfio-container");
  EXPECT_NE(check.fix.find("built-in"), std::string::npos) << check.fix;
  EXPECT_EQ(check.fix.find("modprobe"), std::string::npos) << check.fix;
}

TEST(Doctor, KvmProblemsAreWarningsWithTheKvmGroupFix) {
  DoctorFacts facts = ready_host();
  facts.kvm = {true, true, EACCES, std::nullopt, 0};
  facts.kvm_host.node_group = "kvm";
  const auto check = find_check(assess_doctor_facts(facts), "kvm");
  EXPECT_EQ(check.status, CheckStatus::warn);
  EXPECT_NE(check.fix.find("usermod -aG kvm"), std::string::npos);
  EXPECT_TRUE(all_passed(assess_doctor_facts(facts)));
}

TEST(Doctor, KvmMissingOrBusyGetsTheSameDiagnosisAsTheLibrary) {
  DoctorFacts facts = ready_host();
  facts.kvm = {};
  facts.kvm_host.cpu_vendor = "AuthenticAMD";
  facts.kvm_host.cpu_has_virtualization = true;
  EXPECT_NE(find_check(assess_doctor_facts(facts), "kvm").fix.find("modprobe kvm_amd"),
            std::string::npos);
  facts.kvm = {true, true, 0, 12, 0};
  facts.kvm_create_vm_errno = EBUSY;
  const auto busy = find_check(assess_doctor_facts(facts), "kvm");
  EXPECT_EQ(busy.status, CheckStatus::warn);
  EXPECT_NE(busy.summary.find("KVM_CREATE_VM"), std::string::npos);
  EXPECT_NE(busy.fix.find("another hypervisor"), std::string::npos);
}

TEST(Doctor, KvmFeaturesListWhatTheKernelHasAndLacksWithTheFallback) {
  DoctorFacts facts = ready_host();
  auto check = find_check(assess_doctor_facts(facts), "kvm-features");
  EXPECT_EQ(check.status, CheckStatus::pass);
  EXPECT_EQ(check.summary,
            "has dirty-ring, dirty-ring-acq-rel, manual-dirty-log-protect, binary-stats, "
            "irqfd-resample");
  // A kernel before 6.1 (5.14 to 6.0): the ring without acquire/release, no resample.
  facts.kvm_features->dirty_ring_acq_rel_max_bytes = 0;
  facts.kvm_features->irqfd_resample = false;
  check = find_check(assess_doctor_facts(facts), "kvm-features");
  EXPECT_EQ(check.status, CheckStatus::pass);  // a lacking feature has a fallback
  EXPECT_EQ(check.summary,
            "has dirty-ring, manual-dirty-log-protect, binary-stats; lacks dirty-ring-acq-rel "
            "(the ring with full barriers), irqfd-resample (no INTx through an irqfd)");
  EXPECT_TRUE(check.fix.empty());
  facts.kvm_features = kvm::KvmFeatures{};
  check = find_check(assess_doctor_facts(facts), "kvm-features");
  EXPECT_EQ(check.summary.substr(0, 15), "has none; lacks");
  EXPECT_NE(check.summary.find("dirty-ring (dirty pages from the KVM_GET_DIRTY_LOG bitmap)"),
            std::string::npos);
}

TEST(Doctor, KvmFeaturesUnknownWithoutKvmIsAWarningPointingAtTheKvmCheck) {
  DoctorFacts facts = ready_host();
  facts.kvm = {};
  facts.kvm_features.reset();
  const auto checks = assess_doctor_facts(facts);
  const auto check = find_check(checks, "kvm-features");
  EXPECT_EQ(check.status, CheckStatus::warn);
  EXPECT_EQ(check.fix, "see the kvm check");
  EXPECT_TRUE(all_passed(checks));
}

TEST(Doctor, MemlockLimitWarnsUnlessCapIpcLock) {
  DoctorFacts facts = ready_host();
  facts.memlock = {8u << 20, false};
  auto check = find_check(assess_doctor_facts(facts), "memlock");
  EXPECT_EQ(check.status, CheckStatus::warn);
  EXPECT_NE(check.summary.find("8 MiB"), std::string::npos);
  facts.memlock.cap_ipc_lock = true;
  EXPECT_EQ(find_check(assess_doctor_facts(facts), "memlock").status, CheckStatus::pass);
  facts.memlock = {rlim_t{4} << 30, false};
  EXPECT_EQ(find_check(assess_doctor_facts(facts), "memlock").status, CheckStatus::pass);
}

TEST(Doctor, HugepagePoolsAreListedAndNoneReservedIsAWarningWithTheFix) {
  DoctorFacts facts = ready_host();
  facts.hugepages[0].free = 500;
  facts.hugepages[0].reserved = 20;
  auto check = find_check(assess_doctor_facts(facts), "hugepages");
  EXPECT_EQ(check.status, CheckStatus::pass);
  EXPECT_EQ(check.summary, "2M: 500 of 512 free (20 reserved), 1G: 0 of 0 free");
  EXPECT_TRUE(check.fix.empty());

  facts.hugepages[0] = {std::uint64_t{2} << 20, 0, 0, 0, 0};
  check = find_check(assess_doctor_facts(facts), "hugepages");
  EXPECT_EQ(check.status, CheckStatus::warn);
  EXPECT_EQ(check.summary,
            "2M: 0 of 0 free, 1G: 0 of 0 free: none reserved for launch --qemu --hugepages");
  EXPECT_NE(check.fix.find("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
            std::string::npos);
  EXPECT_NE(check.fix.find("hugepagesz=1G hugepages=N"), std::string::npos);
  EXPECT_TRUE(all_passed(assess_doctor_facts(facts)));

  facts.hugepages.clear();
  check = find_check(assess_doctor_facts(facts), "hugepages");
  EXPECT_EQ(check.status, CheckStatus::warn);
  EXPECT_NE(check.fix.find("CONFIG_HUGETLBFS"), std::string::npos);
  facts.hugepages_error = "read: free_hugepages";
  EXPECT_NE(find_check(assess_doctor_facts(facts), "hugepages").summary.find("cannot be read"),
            std::string::npos);
}

TEST(Doctor, OvmfFoundMissingOrDamaged) {
  DoctorFacts facts = ready_host();
  auto check = find_check(assess_doctor_facts(facts), "ovmf");
  EXPECT_EQ(check.status, CheckStatus::pass);
  EXPECT_EQ(check.summary, "OVMF 4M: /usr/share/OVMF/OVMF_CODE_4M.fd + OVMF_VARS_4M.fd");

  facts.ovmf = {};
  check = find_check(assess_doctor_facts(facts), "ovmf");
  EXPECT_EQ(check.status, CheckStatus::warn);
  EXPECT_EQ(check.summary, "not installed: needed only for launch --qemu --firmware uefi");
  EXPECT_EQ(check.fix, "apt-get install ovmf");
  EXPECT_TRUE(all_passed(assess_doctor_facts(facts)));

  facts.ovmf.problems = {"OVMF_CODE_4M.fd is there but OVMF_VARS_4M.fd is missing"};
  check = find_check(assess_doctor_facts(facts), "ovmf");
  EXPECT_EQ(check.status, CheckStatus::warn);
  EXPECT_NE(check.summary.find("OVMF_VARS_4M.fd is missing"), std::string::npos);
  EXPECT_EQ(check.fix, "apt-get install --reinstall ovmf");
}

TEST(Doctor, GathersHugepagesAndOvmfFromAHostTree) {
  const test::FixtureCopy host(test::fixture("hosts/vtd-ready"));
  const std::filesystem::path ovmf = host.root() / "usr/share/OVMF";
  std::filesystem::create_directories(ovmf);
  for (const auto& [name, size] : {std::pair<const char*, std::uintmax_t>{"OVMF_CODE.fd", 1966080},
                                   {"OVMF_VARS.fd", 131072}}) {
    std::ofstream(ovmf / name).close();
    std::filesystem::resize_file(ovmf / name, size);
  }
  const auto checks = assess_doctor_facts(gather_doctor_facts(host.paths()));
  const auto ovmf_check = find_check(checks, "ovmf");
  EXPECT_EQ(ovmf_check.status, CheckStatus::pass);
  EXPECT_EQ(ovmf_check.summary, "OVMF 2M: " + (ovmf / "OVMF_CODE.fd").string() + " + OVMF_VARS.fd");
}

TEST(Doctor, GathersFactsFromAFixtureTree) {
  const DoctorFacts facts = gather_doctor_facts(test::fixture_host("vtd-ready"));
  EXPECT_EQ(facts.kernel_release, "6.12.0-test");
  EXPECT_EQ(facts.modules.size(), 3u);
  for (const auto& module : facts.modules) EXPECT_EQ(module.state, ModuleState::loaded);
  EXPECT_TRUE(facts.vfio_container.exists);
  EXPECT_FALSE(facts.vfio_container.is_char_device);  // a plain file stands in for the node
  const auto checks = assess_doctor_facts(facts);
  EXPECT_EQ(find_check(checks, "iommu").status, CheckStatus::pass);
  EXPECT_EQ(find_check(checks, "interrupt-remapping").status, CheckStatus::pass);
  EXPECT_EQ(find_check(checks, "vfio-container").status, CheckStatus::fail);
  ASSERT_EQ(facts.hugepages.size(), 2u);
  EXPECT_EQ(find_check(checks, "hugepages").summary,
            "2M: 500 of 512 free (20 reserved), 1G: 0 of 0 free");
  EXPECT_EQ(find_check(checks, "hugepages").status, CheckStatus::pass);
  EXPECT_FALSE(facts.ovmf.firmware);
  EXPECT_EQ(find_check(checks, "ovmf").fix, "apt-get install ovmf");
}

TEST(Doctor, GathersADisabledIommuHost) {
  const auto checks = assess_doctor_facts(gather_doctor_facts(test::fixture_host("dmar-disabled")));
  EXPECT_EQ(find_check(checks, "iommu").status, CheckStatus::fail);
  EXPECT_EQ(find_check(checks, "vfio-modules").status, CheckStatus::warn);
  EXPECT_EQ(find_check(checks, "vfio-container").status, CheckStatus::fail);
  EXPECT_EQ(find_check(checks, "kvm").status, CheckStatus::warn);
  // No /dev/kvm in the tree: KVM was not asked, and no feature is claimed.
  EXPECT_EQ(find_check(checks, "kvm-features").status, CheckStatus::warn);
  EXPECT_FALSE(all_passed(checks));
}

// The arm64 rig as captured (tests/fixtures/hosts/arm64-rig): an SMMUv3 and MSIs through the
// GICv3 ITS pass the iommu and interrupt-remapping checks, though nothing there is VT-d or IR-.
TEST(Doctor, Arm64SmmuV3WithItsPasses) {
  const DoctorFacts facts = gather_doctor_facts(test::fixture_host("arm64-rig"));
  EXPECT_EQ(facts.kernel_release, "6.12.117+deb12-arm64");
  const auto checks = assess_doctor_facts(facts);
  const auto iommu_check = find_check(checks, "iommu");
  EXPECT_EQ(iommu_check.status, CheckStatus::pass);
  EXPECT_EQ(iommu_check.summary,
            "Arm SMMUv3 active (smmu3.0x0000000009050000), 2 IOMMU groups; iommu.passthrough=1: "
            "host drivers' DMA is identity-mapped, VFIO groups still get their own translated "
            "domains");
  const auto msi = find_check(checks, "interrupt-remapping");
  EXPECT_EQ(msi.status, CheckStatus::pass);
  EXPECT_NE(msi.summary.find("GICv3 ITS"), std::string::npos);
  EXPECT_EQ(find_check(checks, "vfio-modules").status, CheckStatus::pass);
}

TEST(Doctor, ArmWithoutItsWarnsAndArmWithoutSmmuPointsAtSmmuv3) {
  DoctorFacts facts = ready_host();
  facts.iommu = {};
  facts.iommu.units = {{"smmu3.0x0000000009050000", iommu::IommuVendor::arm_smmu_v3, {}}};
  facts.iommu.groups = {0};
  facts.iommu.cpu_implementer = "0x41";
  auto msi = find_check(assess_doctor_facts(facts), "interrupt-remapping");
  EXPECT_EQ(msi.status, CheckStatus::warn);
  EXPECT_NE(msi.summary.find("no MSI goes through a GICv3 ITS"), std::string::npos);
  EXPECT_NE(msi.fix.find("its=on"), std::string::npos);
  // allow_unsafe_interrupts still reads as the explicit opt-out it is.
  facts.iommu.allow_unsafe_interrupts = true;
  msi = find_check(assess_doctor_facts(facts), "interrupt-remapping");
  EXPECT_NE(msi.summary.find("allow_unsafe_interrupts"), std::string::npos);

  facts.iommu.units.clear();
  facts.iommu.groups.clear();
  const auto iommu_check = find_check(assess_doctor_facts(facts), "iommu");
  EXPECT_EQ(iommu_check.status, CheckStatus::fail);
  EXPECT_NE(iommu_check.fix.find("iommu=smmuv3"), std::string::npos);
  EXPECT_EQ(iommu_check.fix.find("VT-d"), std::string::npos);
  EXPECT_EQ(find_check(assess_doctor_facts(facts), "interrupt-remapping").status,
            CheckStatus::warn);  // allow_unsafe_interrupts=Y
}

}  // namespace
}  // namespace vfiokit::cli
