#include "vfiokit/base/kmod.h"

#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"

namespace vfiokit {
namespace {

TEST(Kmod, ANameModprobeWouldReadAsAnOptionIsRefusedBeforeItRuns) {
  for (const char* name : {"-r", "--remove", "", "vfio pci", "../vfio-pci", "a\tb"}) {
    try {
      load_module(name);
      ADD_FAILURE() << "'" << name << "' was taken for a module";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage) << name;
      EXPECT_NE(std::string(e.what()).find("is not a module name"), std::string::npos) << e.what();
    }
  }
}

TEST(Kmod, CanonicalNamesUseUnderscores) {
  EXPECT_EQ(canonical_module_name("vfio-pci"), "vfio_pci");
  EXPECT_EQ(canonical_module_name("vfio_iommu_type1"), "vfio_iommu_type1");
}

TEST(Kmod, LoadedModulesComeFromSysModule) {
  const HostPaths host = test::fixture_host("vtd-ready");
  EXPECT_EQ(module_state(host, "vfio"), ModuleState::loaded);
  EXPECT_EQ(module_state(host, "vfio-pci"), ModuleState::loaded);
  EXPECT_EQ(module_state(host, "kvm_intel"), ModuleState::missing);
}

TEST(Kmod, AvailableAndBuiltinComeFromTheRunningKernelsListings) {
  const HostPaths host = test::fixture_host("dmar-disabled");
  EXPECT_EQ(kernel_release(host), "6.1.0-18-amd64");
  EXPECT_EQ(module_state(host, "vfio"), ModuleState::available);
  EXPECT_EQ(module_state(host, "vfio_pci"), ModuleState::available);
  EXPECT_EQ(module_state(host, "vfio-pci-core"), ModuleState::available);
  EXPECT_EQ(module_state(host, "iommufd"), ModuleState::builtin);
  // A prefix of a listed name is not that module.
  EXPECT_EQ(module_state(host, "vfio_pc"), ModuleState::missing);
  EXPECT_EQ(module_state(host, "pci"), ModuleState::missing);
}

TEST(Kmod, NoListingsMeansMissing) {
  EXPECT_EQ(module_state(test::fixture_host("no-iommu"), "vfio"), ModuleState::missing);
}

}  // namespace
}  // namespace vfiokit
