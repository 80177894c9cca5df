// Type1 dirty page tracking on the rig's real vfio_iommu_type1 (issue 14): what the kernel
// offers (the migration capability), and what it reports while edu, a plain vfio-pci device,
// DMAs into one known page: every mapped page, on every GET, whatever the device wrote
// (iommu/dirty_pages.h, docs/dma.md "Dirty pages").
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/error.h"
#include "vfiokit/drivers/edu.h"
#include "vfiokit/iommu/dirty_pages.h"
#include "vfiokit/iommu/dma.h"
#include "vfiokit/iommu/dma_sync.h"
#include "vfiokit/vfio/open.h"

namespace vfiokit::hil {
namespace {

constexpr std::uint64_t kPage = 4096;
// Under edu's 28-bit DMA mask: four pages at kLow, two at kHigh, a gap of unmapped IOVA between.
constexpr std::uint64_t kLow = 0x100000, kHigh = 0x200000;
constexpr std::uint64_t kLowPages = 4, kHighPages = 2;

std::vector<std::uint64_t> pages_at(std::uint64_t iova, std::uint64_t count) {
  std::vector<std::uint64_t> iovas;
  for (std::uint64_t i = 0; i < count; ++i) iovas.push_back(iova + i * kPage);
  return iovas;
}

std::vector<std::uint64_t> concat(std::vector<std::uint64_t> a,
                                  const std::vector<std::uint64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class VfioDirty : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!in_rig()) return;
    edu_ = find_pci_function(kEduVendor, kEduDevice).value_or("");
    const auto bind = vfiokit({"bind", edu_});
    ASSERT_EQ(bind.exit_status, 0) << bind.output;
  }
  static void TearDownTestSuite() {
    if (!in_rig()) return;
    EXPECT_EQ(vfiokit({"restore", "--all"}).exit_status, 0);
  }
  void SetUp() override {
    VFIOKIT_REQUIRE_RIG();
    ASSERT_EQ(driver_of(edu_), "vfio-pci");
    opened_.emplace(vfio::open_vfio_device({}, *pci::parse_bdf(edu_)));
  }

  static inline std::string edu_;
  std::optional<vfio::OpenedDevice> opened_;
};

TEST_F(VfioDirty, TheKernelOffersTheMigrationCapability) {
  const iommu::DirtyTrackingSupport support = opened_->backend->dirty_tracking_support();
  ASSERT_TRUE(support.supported) << support.reason;
  // vfio_iommu_migration_build_caps(): the smallest IOMMU page size, DIRTY_BITMAP_SIZE_MAX.
  EXPECT_EQ(support.page_size, kPage);
  EXPECT_EQ(support.max_bitmap_bytes, std::uint64_t{256} << 20);
  EXPECT_EQ(opened_->backend->name(), "vfio-type1v2");
}

TEST_F(VfioDirty, Type1ReportsEveryMappedPageOnEveryGetWhateverTheDeviceWrote) {
  iommu::IommuBackend& backend = *opened_->backend;
  const auto low_memory =
      iommu::DmaBuffer::allocate(kLowPages * kPage, {.allow_huge_pages = false});
  const auto high_memory =
      iommu::DmaBuffer::allocate(kHighPages * kPage, {.allow_huge_pages = false});
  std::memset(low_memory.data(), 0, low_memory.size());
  iommu::DmaMapping low =
      backend.map(low_memory.data(), kLow, kLowPages * kPage, iommu::DmaDirection::bidirectional);
  iommu::DmaMapping high = backend.map(high_memory.data(), kHigh, kHighPages * kPage,
                                       iommu::DmaDirection::bidirectional);
  const std::uint64_t whole = kHigh + kHighPages * kPage - kLow;  // both, and the gap
  const auto every_mapped_page = concat(pages_at(kLow, kLowPages), pages_at(kHigh, kHighPages));

  iommu::DirtyPageTracking tracking = iommu::DirtyPageTracking::start(backend);
  // The first GET after START: every mapped page, none of the gap.
  const iommu::DirtyBitmap first = tracking.get(kLow, whole);
  EXPECT_EQ(first.pages, whole / kPage);
  EXPECT_EQ(first.words.size(), (whole / kPage + 63) / 64);
  EXPECT_EQ(first.iovas(), every_mapped_page);
  // The GET cleared the bits, and nothing ran since: the pages still pinned come back all the
  // same.
  EXPECT_EQ(tracking.get(kLow, whole).iovas(), every_mapped_page);
  // One mapping alone, and the gap alone.
  EXPECT_EQ(tracking.get(kHigh, kHighPages * kPage).iovas(), pages_at(kHigh, kHighPages));
  EXPECT_EQ(tracking.get(kLow + kLowPages * kPage, kPage).dirty_count(), 0u);

  // edu writes 2 KiB into the third low page: from its buffer, filled from the high mapping.
  const vfio::VfioDevice& device = opened_->device;
  device.enable_bus_master();
  const drivers::Edu edu(device);
  for (std::size_t i = 0; i < drivers::Edu::kMaxTransfer; ++i) {
    high_memory.bytes()[i] = static_cast<std::uint8_t>(0x5a ^ i);
  }
  iommu::sync_for_device({reinterpret_cast<const std::byte*>(high_memory.data()), kPage});
  edu.start_dma(drivers::Edu::Direction::to_device, kHigh, 0, drivers::Edu::kMaxTransfer, false);
  ASSERT_TRUE(edu.wait_dma_idle(std::chrono::seconds(10)));
  const std::uint64_t target = kLow + 2 * kPage;
  edu.start_dma(drivers::Edu::Direction::from_device, target, 0, drivers::Edu::kMaxTransfer, false);
  ASSERT_TRUE(edu.wait_dma_idle(std::chrono::seconds(10)));
  iommu::sync_for_cpu({reinterpret_cast<const std::byte*>(low_memory.data()), low_memory.size()});
  const auto written = low_memory.bytes().subspan(2 * kPage, drivers::Edu::kMaxTransfer);
  EXPECT_TRUE(std::equal(written.begin(), written.end(), high_memory.bytes().begin()))
      << "edu's DMA did not land in the page it was sent to";
  const auto before = low_memory.bytes().first(2 * kPage);
  const auto after = low_memory.bytes().subspan(2 * kPage + drivers::Edu::kMaxTransfer);
  EXPECT_TRUE(std::all_of(before.begin(), before.end(), [](auto b) { return b == 0; }) &&
              std::all_of(after.begin(), after.end(), [](auto b) { return b == 0; }))
      << "edu wrote outside the 2 KiB it was sent to";

  // Type1 cannot see which page the device wrote: still every mapped page, not just the one.
  EXPECT_EQ(tracking.get(kLow, whole).iovas(), every_mapped_page);

  // A mapping made while tracking is on is reported from then on; one unmapped is not.
  const auto late_memory = iommu::DmaBuffer::allocate(kPage, {.allow_huge_pages = false});
  constexpr std::uint64_t kLate = 0x180000;
  iommu::DmaMapping late =
      backend.map(late_memory.data(), kLate, kPage, iommu::DmaDirection::bidirectional);
  high.unmap();
  EXPECT_EQ(tracking.get(kLow, whole).iovas(), concat(pages_at(kLow, kLowPages), {kLate}));

  // A range that cuts a mapping is refused before the kernel, naming it.
  try {
    tracking.get(kLow + kPage, kPage);
    ADD_FAILURE() << "a range inside a mapping was asked for";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuts the DMA mapping 0x100000-0x103fff"),
              std::string::npos)
        << e.what();
  }

  // STOP, by the destructor: the kernel accepts START again only after a STOP (type1 answers
  // EINVAL to a second START).
  tracking = iommu::DirtyPageTracking();
  iommu::DirtyPageTracking again = iommu::DirtyPageTracking::start(backend);
  EXPECT_EQ(again.get(kLow, whole).iovas(), concat(pages_at(kLow, kLowPages), {kLate}));
  again.stop();
  EXPECT_FALSE(again);
}

}  // namespace
}  // namespace vfiokit::hil
