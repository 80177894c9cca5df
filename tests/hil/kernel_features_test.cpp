// What the rig's kernel offers, as vfiokit detects it, against what that kernel generation is
// known to have (docs/hil.md, "Two kernels"). The generation comes from outside the test:
// ctest passes it with `tools/rig/run --kernel K --env VFIOKIT_RIG_KERNEL=K`, so a probe that
// answered from the kernel version instead of asking the kernel could not pass on both.
#include <linux/vfio.h>
#include <sys/utsname.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <string>

#include "tests/hil/rig_support.h"
#include "vfiokit/kvm/features.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/pci/bdf.h"
#include "vfiokit/vfio/open.h"

namespace vfiokit::hil {
namespace {

// "6.1" or "6.12", as ctest passed it; the test fails (never skips) in the rig without it.
std::string expected_generation() {
  const char* value = std::getenv("VFIOKIT_RIG_KERNEL");
  return value != nullptr ? value : "";
}

class KernelFeatures : public RigDeviceTest {
 protected:
  void SetUp() override {
    RigDeviceTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    generation_ = expected_generation();
    ASSERT_TRUE(generation_ == "6.1" || generation_ == "6.12")
        << "VFIOKIT_RIG_KERNEL is '" << generation_
        << "': run with tools/rig/run --kernel K --env VFIOKIT_RIG_KERNEL=K (K: 6.1 or 6.12)";
    // The rig booted the generation the test was told about (6.1.0-N-amd64, 6.12.N+deb12-amd64).
    utsname name{};
    ASSERT_EQ(::uname(&name), 0);
    ASSERT_EQ(std::string(name.release).rfind(generation_ + ".", 0), 0u)
        << "the rig runs " << name.release << ", not a " << generation_ << " kernel";
  }
  bool is_612() const { return generation_ == "6.12"; }
  std::string generation_;
};

TEST_F(KernelFeatures, KvmCapabilitiesAreDetectedAsThisKernelHasThem) {
  const kvm::KvmFeatures features = kvm::probe_kvm_features(kvm::KvmSystem::open());
  // Both generations: the ring since 5.11 (65536 entries of 16 bytes at most), the ACQ_REL
  // ring since 6.1 (Debian's 6.1 has CONFIG_HAVE_KVM_DIRTY_RING_ACQ_REL), manual protect with
  // both flags since 5.8, binary statistics since 5.14, irqfd resample on x86 since 3.13.
  EXPECT_EQ(features.dirty_ring_max_bytes, 65536u * 16);
  EXPECT_EQ(features.dirty_ring_acq_rel_max_bytes, 65536u * 16);
  EXPECT_EQ(features.manual_dirty_log_protect_flags, 3u);
  EXPECT_TRUE(features.binary_stats);
  EXPECT_TRUE(features.irqfd_resample);
}

TEST_F(KernelFeatures, DoctorReportsTheSameFeaturesAsTheProbe) {
  const kvm::KvmFeatures features = kvm::probe_kvm_features(kvm::KvmSystem::open());
  const auto result = vfiokit({"doctor", "--json"});
  const auto json = conforming_json(result, "doctor.json");
  ASSERT_TRUE(json["kvm_features"].is_array()) << result.output;
  const auto report = kvm::report_kvm_features(features);
  ASSERT_EQ(json["kvm_features"].size(), report.size());
  for (std::size_t i = 0; i < report.size(); ++i) {
    EXPECT_EQ(json["kvm_features"][i]["name"], std::string(report[i].name));
    EXPECT_EQ(json["kvm_features"][i]["present"], report[i].present) << report[i].name;
  }
  bool listed = false;
  for (const auto& check : json["checks"]) {
    if (check["id"] != "kvm-features") continue;
    listed = true;
    EXPECT_EQ(check["status"], "pass") << check["summary"];
  }
  EXPECT_TRUE(listed) << result.output;
}

TEST_F(KernelFeatures, DynamicMsixOnlyWhereTheKernelHasIt) {
  // Linux 6.5 added dynamic MSI-X (vfio-pci drops VFIO_IRQ_INFO_NORESIZE from MSI-X where the
  // interrupt domain can allocate while enabled; the rig's VT-d remapping domain can): 6.12 has
  // it, Debian 12's 6.1 does not.
  const auto bind = vfiokit({"bind", nvme_});
  ASSERT_EQ(bind.exit_status, 0) << bind.output;
  {
    vfio::OpenedDevice opened = vfio::open_vfio_device({}, *pci::parse_bdf(nvme_));
    EXPECT_EQ(opened.device.irq_info(VFIO_PCI_MSIX_IRQ_INDEX).noresize(), !is_612());
    // MSI never resizes while enabled, on either kernel.
    EXPECT_TRUE(opened.device.irq_info(VFIO_PCI_MSI_IRQ_INDEX).noresize());
  }
  const auto info = vfiokit({"info", nvme_, "--json"});
  ASSERT_EQ(info.exit_status, 0) << info.output;
  const auto json = conforming_json(info, "info.json");
  EXPECT_EQ(json["irqs"][VFIO_PCI_MSIX_IRQ_INDEX]["name"], "MSI-X");
  EXPECT_EQ(json["irqs"][VFIO_PCI_MSIX_IRQ_INDEX]["dynamic"], is_612());
  EXPECT_TRUE(json["irqs"][VFIO_PCI_MSI_IRQ_INDEX]["dynamic"].is_null());
}

}  // namespace
}  // namespace vfiokit::hil
