// A group bound for one run and given back (launch's BindingSession), against the fake kernel.
#include "vfiokit/bind/binding_session.h"

#include <gtest/gtest.h>

#include "tests/unit/fake_kernel.h"
#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::bind {
namespace {

pci::Bdf bdf(const char* text) { return *pci::parse_bdf(text); }

TEST(BindingSession, BindsTheGroupForTheRunAndGivesItBackWhenItEnds) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const HostPaths paths = copy.paths();
  test::FakeKernel kernel(paths);
  std::vector<std::string> progress;
  SessionOptions options;
  options.ops = &kernel;
  options.lock_wait = std::chrono::milliseconds(0);
  options.on_outcome = [&](const DeviceOutcome& o) {
    progress.push_back(o.bdf.to_string() + " " + o.detail);
  };
  {
    BindingSession session(paths, bdf("0000:01:00.0"), options);
    EXPECT_EQ(session.endpoints(),
              (std::vector<pci::Bdf>{bdf("0000:01:00.0"), bdf("0000:01:00.1")}));
    EXPECT_EQ(session.moved(), session.endpoints());
    EXPECT_EQ(pci::read_driver(paths, bdf("0000:01:00.0")), "vfio-pci");
    EXPECT_EQ(pci::read_driver(paths, bdf("0000:01:00.1")), "vfio-pci");
    EXPECT_EQ(Journal(paths.run / "vfiokit").entries().size(), 2u);
  }
  EXPECT_EQ(pci::read_driver(paths, bdf("0000:01:00.0")), "nouveau");
  EXPECT_EQ(pci::read_driver(paths, bdf("0000:01:00.1")), "snd_hda_intel");
  EXPECT_TRUE(Journal(paths.run / "vfiokit").entries().empty());
  EXPECT_EQ(progress, (std::vector<std::string>{
                          "0000:01:00.0 moved nouveau -> vfio-pci",
                          "0000:00:01.0 bridge, stays on pcieport",
                          "0000:01:00.1 moved snd_hda_intel -> vfio-pci",
                          "0000:01:00.0 back on nouveau",
                          "0000:01:00.1 back on snd_hda_intel",
                      }));
}

TEST(BindingSession, ARefusedPlanThrowsARefusalAndChangesNothing) {
  test::FixtureCopy copy(test::fixture("sysfs/boot-vga"));
  test::FakeKernel kernel(copy.paths());
  SessionOptions options;
  options.ops = &kernel;
  try {
    BindingSession session(copy.paths(), bdf("0000:00:02.0"), options);
    FAIL() << "no refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::refused);
    EXPECT_NE(e.hint().find("--force-boot-vga"), std::string::npos);
  }
  EXPECT_TRUE(kernel.writes.empty());
}

TEST(BindingSession, ADeviceAlreadyOnVfioIsAnEndpointButNotGivenBack) {
  test::FixtureCopy copy(test::fixture("sysfs/vfio-in-use"));
  test::FakeKernel kernel(copy.paths());
  SessionOptions options;
  options.ops = &kernel;
  {
    BindingSession session(copy.paths(), bdf("0000:06:00.0"), options);
    EXPECT_EQ(session.endpoints(), std::vector<pci::Bdf>{bdf("0000:06:00.0")});
    EXPECT_TRUE(session.moved().empty());
    session.restore();
  }
  EXPECT_TRUE(kernel.writes.empty());
  EXPECT_EQ(pci::read_driver(copy.paths(), bdf("0000:06:00.0")), "vfio-pci");
}

}  // namespace
}  // namespace vfiokit::bind
