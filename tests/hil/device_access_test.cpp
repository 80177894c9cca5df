// Driving devices from user space on the rig's real kernel: the three selftest paths, the DMA
// mapping limit, growing MSI-X without losing vectors, reset, an unviable group, and nothing
// (fds, pinned memory) left behind by any teardown.
#include <linux/vfio.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/drivers/selftest.h"
#include "vfiokit/iommu/dma.h"
#include "vfiokit/msix/vectors.h"
#include "vfiokit/vfio/open.h"

namespace vfiokit::hil {
namespace {

// What the process holds: open fds and the memory VFIO pinned (accounted in VmLck).
struct Resources {
  std::size_t fds = 0;
  std::uint64_t locked_kib = 0;
  static Resources now() {
    Resources r;
    r.fds = list_dir("/proc/self/fd").size();
    r.locked_kib = locked_memory_kib();
    return r;
  }
  bool operator==(const Resources&) const = default;
};

void PrintTo(const Resources& r, std::ostream* out) {
  *out << r.fds << " fds, " << r.locked_kib << " KiB locked";
}

class DeviceAccess : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!in_rig()) return;
    edu_ = find_pci_function(kEduVendor, kEduDevice).value_or("");
    nvme_ = find_pci_function(kNvmeVendor, kNvmeDevice).value_or("");
    e1000e_ = find_pci_function(kE1000eVendor, kE1000eDevice).value_or("");
    const auto bind = vfiokit({"bind", edu_, nvme_, e1000e_});
    ASSERT_EQ(bind.exit_status, 0) << bind.output;
  }
  static void TearDownTestSuite() {
    if (!in_rig()) return;
    EXPECT_EQ(vfiokit({"restore", "--all"}).exit_status, 0);
  }
  void SetUp() override {
    VFIOKIT_REQUIRE_RIG();
    ASSERT_EQ(driver_of(nvme_), "vfio-pci");
    start_ = Resources::now();
  }
  void TearDown() override {
    if (!in_rig()) return;
    EXPECT_EQ(Resources::now(), start_) << "a teardown left something behind";
  }
  static pci::Bdf bdf(const std::string& text) { return *pci::parse_bdf(text); }

  static inline std::string edu_, nvme_, e1000e_;
  Resources start_;
};

void expect_all_passed(const std::vector<drivers::StageResult>& results, std::size_t stages) {
  ASSERT_EQ(results.size(), stages);
  for (const auto& r : results) {
    EXPECT_NE(r.status, drivers::StageStatus::failed) << r.name << ": " << r.detail;
  }
}

TEST_F(DeviceAccess, EduSelftestCopiesAPatternThroughTheIommu) {
  const auto results = drivers::run_selftest({}, bdf(edu_), {});
  expect_all_passed(results, 5);
  EXPECT_EQ(results[2].status, drivers::StageStatus::passed);
  EXPECT_NE(results[2].detail.find("identical"), std::string::npos);
  EXPECT_NE(results[3].detail.find("raised by edu itself"), std::string::npos);
  EXPECT_EQ(results[4].name, "irq-kvm");
  EXPECT_NE(results[4].detail.find("edu's own MSI reached guest vector 0x30"), std::string::npos);
}

TEST_F(DeviceAccess, NvmeSelftestRunsIdentifyAndChecksTheRigsSerial) {
  drivers::SelftestOptions options;
  options.expected_serial = "vfiokit-nvme-0";
  const auto results = drivers::run_selftest({}, bdf(nvme_), options);
  expect_all_passed(results, 5);
  EXPECT_EQ(results[2].status, drivers::StageStatus::passed);
  EXPECT_NE(results[2].detail.find("completion on MSI-X vector 0"), std::string::npos);
  EXPECT_NE(results[3].detail.find("65/65 MSI-X vectors"), std::string::npos);
  options.expected_serial = "someone-else";
  const auto wrong = drivers::run_selftest({}, bdf(nvme_), options);
  EXPECT_EQ(wrong[2].status, drivers::StageStatus::failed);
}

TEST_F(DeviceAccess, OtherDevicesFireEveryMsixVectorThroughTheCli) {
  const auto result = vfiokit({"selftest", e1000e_, "--json"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto json = conforming_json(result, "selftest.json");
  EXPECT_EQ(json["passed"], true);
  EXPECT_EQ(json["stages"][2]["status"], "skipped");
  EXPECT_EQ(json["stages"][3]["status"], "ok");
  EXPECT_NE(json["stages"][3]["detail"].get<std::string>().find("5/5 MSI-X"), std::string::npos);
}

TEST_F(DeviceAccess, InfoReportsRegionsIrqsAndIovaRanges) {
  const auto result = vfiokit({"info", nvme_, "--json"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto json = conforming_json(result, "info.json");
  EXPECT_EQ(json["regions"][0]["size"], 16384);
  EXPECT_EQ(json["regions"][0]["mmap"], true);
  EXPECT_EQ(json["irqs"][2]["name"], "MSI-X");
  EXPECT_EQ(json["irqs"][2]["count"], 65);
  EXPECT_EQ(json["iommu"]["dma_available"], 65535);
  // The interrupt window 0xfee00000-0xfeefffff is never usable IOVA.
  for (const auto& range : json["iommu"]["iova_ranges"]) {
    const auto start = *parse_uint(range["start"].get<std::string>(), 16);
    const auto end = *parse_uint(range["end"].get<std::string>(), 16);
    EXPECT_TRUE(end < 0xfee00000 || start > 0xfeefffff);
  }
}

TEST_F(DeviceAccess, InfoOnConventionalPciSaysTheErrIndexIsNotAvailable) {
  // edu is conventional PCI (no PCI Express capability): vfio-pci offers it no ERR index.
  const auto result = vfiokit({"info", edu_, "--json"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto json = conforming_json(result, "info.json");
  bool err_seen = false;
  for (const auto& irq : json["irqs"]) {
    if (irq["name"] != "ERR") {
      EXPECT_EQ(irq["available"], true) << irq.dump();
      continue;
    }
    err_seen = true;
    EXPECT_EQ(irq["available"], false);
    EXPECT_NE(irq["reason"].get<std::string>().find("PCI Express"), std::string::npos);
  }
  EXPECT_TRUE(err_seen) << result.output;
  const auto text = vfiokit({"info", edu_});
  EXPECT_EQ(text.exit_status, 0) << text.output;
  EXPECT_NE(text.output.find("ERR  not available"), std::string::npos) << text.output;
  // nvme is PCI Express: its ERR index is there.
  const auto nvme = conforming_json(vfiokit({"info", nvme_, "--json"}), "info.json");
  EXPECT_EQ(nvme["irqs"][3]["name"], "ERR");
  EXPECT_EQ(nvme["irqs"][3]["available"], true);
}

TEST_F(DeviceAccess, PageSizedMappingsHitTheLimitWhileOneCoalescedMappingFits) {
  constexpr std::size_t kSize = std::size_t{512} << 20;
  constexpr std::size_t kPage = 4096;
  vfio::OpenedDevice opened = vfio::open_vfio_device({}, bdf(nvme_));
  const auto buffer = iommu::DmaBuffer::allocate(kSize, {.allow_huge_pages = false});
  std::vector<iommu::DmaMapping> pages;
  pages.reserve(kSize / kPage);
  std::string failure;
  try {
    for (std::size_t offset = 0; offset < kSize; offset += kPage) {
      pages.push_back(opened.backend->map(buffer.bytes().data() + offset, 0x100000000 + offset,
                                          kPage, iommu::DmaDirection::bidirectional));
    }
  } catch (const Error& e) {
    failure = e.what() + std::string(" | ") + e.hint();
  }
  EXPECT_EQ(pages.size(), 65535u);
  EXPECT_NE(failure.find("ENOSPC"), std::string::npos) << failure;
  EXPECT_NE(failure.find("dma_entry_limit"), std::string::npos) << failure;
  EXPECT_EQ(opened.backend->info().dma_available, 0u);
  EXPECT_GE(Resources::now().locked_kib, 65535u * 4);  // the kernel pinned what was mapped
  pages.clear();
  EXPECT_EQ(opened.backend->info().dma_available, 65535u);
  const iommu::DmaMapping whole =
      opened.backend->map(buffer.data(), 0x100000000, kSize, iommu::DmaDirection::bidirectional);
  EXPECT_EQ(whole.size(), kSize);
  EXPECT_EQ(opened.backend->info().dma_available, 65534u);
}

TEST_F(DeviceAccess, MsixGrowsWithoutLosingTheVectorsInUse) {
  vfio::OpenedDevice opened = vfio::open_vfio_device({}, bdf(nvme_));
  msix::InterruptVectors vectors(opened.device, VFIO_PCI_MSIX_IRQ_INDEX);
  vectors.enable(1);
  const int first_fd = vectors.eventfd(0);
  vectors.trigger(0);
  EXPECT_TRUE(vectors.wait_for(0, std::chrono::seconds(5)));
  vectors.grow(65);
  EXPECT_EQ(vectors.count(), 65u);
  EXPECT_EQ(vectors.eventfd(0), first_fd);
  vectors.trigger(0);
  EXPECT_TRUE(vectors.wait_for(0, std::chrono::seconds(5)));
  vectors.trigger(64);
  EXPECT_TRUE(vectors.wait_for(64, std::chrono::seconds(5)));
  EXPECT_THROW(vectors.grow(66), Error);
  EXPECT_THROW(vectors.trigger(65), Error);
}

TEST_F(DeviceAccess, ResetWhereTheDeviceHasOneAndAClearErrorWhereNot) {
  vfio::OpenedDevice nvme = vfio::open_vfio_device({}, bdf(nvme_));
  ASSERT_TRUE(nvme.device.info().resettable());
  EXPECT_NO_THROW(nvme.device.reset());
  vfio::OpenedDevice edu = vfio::open_vfio_device({}, bdf(edu_));
  EXPECT_FALSE(edu.device.info().resettable());
  try {
    edu.device.reset();
    FAIL() << "edu has no reset";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("offers no reset"), std::string::npos);
  }
}

TEST_F(DeviceAccess, ADeviceNotOnVfioPciIsNamedWithTheFix) {
  vfiokit({"unbind", e1000e_});
  try {
    vfio::open_vfio_device({}, bdf(e1000e_));
    FAIL() << "opened a device on e1000e";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is on e1000e, not vfio-pci"), std::string::npos)
        << e.what();
    EXPECT_NE(e.hint().find("vfiokit bind " + e1000e_), std::string::npos);
  }
  EXPECT_EQ(vfiokit({"bind", e1000e_}).exit_status, 0);
}

TEST_F(DeviceAccess, AnUnviableGroupNamesTheDeviceThatHoldsItBack) {
  // Group 4 is the ICH9 LPC, SATA and SMBus functions. SMBus goes to its host driver; SATA goes
  // to vfio-pci alone, by hand, the way a careless script would.
  const std::string sata = "0000:00:1f.2";
  const std::string smbus = "0000:00:1f.3";
  ASSERT_EQ(run_command({"modprobe", "i2c-i801"}).exit_status, 0);
  ASSERT_EQ(driver_of(smbus), "i801_smbus");
  write_attribute("/sys/bus/pci/devices/" + sata + "/driver_override", "vfio-pci");
  write_attribute("/sys/bus/pci/drivers_probe", sata);
  ASSERT_EQ(driver_of(sata), "vfio-pci");
  try {
    vfio::open_vfio_device({}, bdf(sata));
    ADD_FAILURE() << "opened a device of an unviable group";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "IOMMU group 4 is not viable: 0000:00:1f.3 is bound to i801_smbus"),
              std::string::npos)
        << e.what();
  }
  write_attribute("/sys/bus/pci/devices/" + sata + "/driver_override", "\n");
  write_attribute("/sys/bus/pci/drivers/vfio-pci/unbind", sata);
  EXPECT_EQ(run_command({"rmmod", "i2c_i801"}).exit_status, 0);
}

}  // namespace
}  // namespace vfiokit::hil
