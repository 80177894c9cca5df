// A hardware-in-loop test written the way a user of the installed vfiokit writes one: it puts
// QEMU's edu device on vfio-pci for the test, opens it through VFIO, maps BAR0, copies 4 KiB
// into the device and back out by DMA through the IOMMU, waits for each transfer's MSI on an
// eventfd, and gives the device back to its host driver. Without root, VFIO or an edu device it
// skips and says why; inside vfiokit's rig (VFIOKIT_RIG=1) a missing prerequisite is a failure.
#include <linux/vfio.h>

#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "vfiokit/base/error.h"
#include "vfiokit/bind/binding_session.h"
#include "vfiokit/drivers/edu.h"
#include "vfiokit/iommu/dma.h"
#include "vfiokit/msix/vectors.h"
#include "vfiokit/pci/bdf.h"
#include "vfiokit/version.h"
#include "vfiokit/vfio/open.h"

namespace {

namespace fs = std::filesystem;
using vfiokit::drivers::Edu;

std::string read_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The first PCI function that is an edu device, by its IDs (slots move between machines).
std::optional<std::string> find_edu() {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/sys/bus/pci/devices", error)) {
    if (read_line(entry.path() / "vendor") == "0x1234" &&
        read_line(entry.path() / "device") == "0x11e8") {
      return entry.path().filename().string();
    }
  }
  return std::nullopt;
}

std::string driver_of(const std::string& bdf) {
  std::error_code error;
  const fs::path link = fs::read_symlink("/sys/bus/pci/devices/" + bdf + "/driver", error);
  return error ? std::string("(none)") : link.filename().string();
}

// Why this machine cannot run the test, or "" when it can.
std::string missing_prerequisite() {
  if (geteuid() != 0) return "binding a device needs root";
  if (!fs::exists("/dev/vfio/vfio")) return "no /dev/vfio/vfio: load vfio-pci";
  if (!find_edu()) return "no edu device (1234:11e8): start QEMU with -device edu";
  return "";
}

bool in_vfiokit_rig() {
  const char* flag = std::getenv("VFIOKIT_RIG");
  return flag != nullptr && std::string_view(flag) == "1";
}

class EduOnVfio : public testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = missing_prerequisite();
    if (missing.empty()) return;
    if (in_vfiokit_rig()) FAIL() << missing;
    GTEST_SKIP() << missing;
  }
};

TEST_F(EduOnVfio, DmaRoundTripSignalsMsiAndTheDeviceGoesHome) {
  const std::string edu_bdf = *find_edu();
  const vfiokit::pci::Bdf bdf = vfiokit::pci::parse_bdf_or_throw(edu_bdf);
  const std::string host_driver = driver_of(edu_bdf);
  {
    // The device's IOMMU group goes to vfio-pci under vfiokit's checks and journal; the session
    // gives it back when it ends, even if an assertion below throws.
    vfiokit::bind::BindingSession session({}, bdf, {});
    ASSERT_EQ(driver_of(edu_bdf), "vfio-pci");

    {  // the device is closed before it goes home: vfio-pci waits for its users to let go
      // Declared in teardown order, last first: the vectors are disabled, then the DMA mappings
      // go, then the device and its IOMMU container close.
      vfiokit::vfio::OpenedDevice opened = vfiokit::vfio::open_vfio_device({}, bdf);
      const Edu edu(opened.device);  // maps BAR0
      EXPECT_EQ(edu.identification(), Edu::kIdentification);
      EXPECT_TRUE(edu.liveness(0x5a5a0f0f));

      opened.device.enable_bus_master();  // DMA and MSI are the device's memory writes
      vfiokit::iommu::DmaSpace dma(*opened.backend, Edu::kDmaMask);
      const auto in = dma.allocate(Edu::kBufferSize, vfiokit::iommu::DmaDirection::to_device,
                                   {.allow_huge_pages = false});
      const auto out = dma.allocate(Edu::kBufferSize, vfiokit::iommu::DmaDirection::from_device,
                                    {.allow_huge_pages = false});
      std::mt19937 random(20261201);
      for (auto& byte : in.bytes().first(Edu::kBufferSize)) {
        byte = static_cast<std::uint8_t>(random());
      }
      vfiokit::msix::InterruptVectors msi(opened.device, VFIO_PCI_MSI_IRQ_INDEX);
      msi.enable(1);
      ASSERT_GE(msi.eventfd(0), 0);

      const auto transfer = [&](Edu::Direction direction, std::uint64_t iova) {
        edu.start_dma(direction, iova, 0, Edu::kMaxTransfer, /*interrupt=*/true);
        EXPECT_TRUE(msi.wait_for(0, std::chrono::seconds(10))) << "no MSI for the DMA";
        edu.acknowledge_interrupt(Edu::kDmaInterrupt);
      };
      for (std::uint32_t half = 0; half < Edu::kBufferSize; half += Edu::kMaxTransfer) {
        transfer(Edu::Direction::to_device, in.iova() + half);
        transfer(Edu::Direction::from_device, out.iova() + half);
      }
      EXPECT_TRUE(std::equal(in.bytes().begin(), in.bytes().begin() + Edu::kBufferSize,
                             out.bytes().begin()))
          << "the copy that came back differs";
    }
    // What the session moved is given back now, and a failure to do so is this test's failure.
    session.restore();
  }
  EXPECT_EQ(driver_of(edu_bdf), host_driver);
}

TEST(InstalledLibrary, VersionHeaderNamesARelease) {
  EXPECT_EQ(std::string(VFIOKIT_VERSION_STRING), std::to_string(VFIOKIT_VERSION_MAJOR) + "." +
                                                     std::to_string(VFIOKIT_VERSION_MINOR) + "." +
                                                     std::to_string(VFIOKIT_VERSION_PATCH));
}

}  // namespace
