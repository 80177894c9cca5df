// Type1 dirty page tracking: the migration capability, the checks made before the ioctl, the
// bitmap decoders (exhaustively against a bit-by-bit reading), and start/get/stop against a
// fake vfio_iommu_type1 that checks requests as the kernel does (tests/unit/fake_kernel.h).
#include "vfiokit/iommu/dirty_pages.h"

#include <gtest/gtest.h>
#include <linux/vfio.h>

#include <memory>
#include <random>
#include <string>

#include "tests/unit/fake_kernel.h"
#include "tests/unit/info_builder.h"
#include "vfiokit/base/error.h"

namespace vfiokit::iommu {
namespace {

using test::FakeType1Backend;
using test::InfoBuilder;

constexpr std::uint64_t kPage = 4096;

// Runs `action`, which must throw Error, and returns it.
template <typename Action>
Error error_of(Action&& action) {
  try {
    action();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("none", "none");
}

// The reading the decoders must agree with: one bit at a time.
std::vector<std::uint64_t> naive_indices(const std::vector<std::uint64_t>& words,
                                         std::uint64_t pages) {
  std::vector<std::uint64_t> indices;
  for (std::uint64_t i = 0; i < pages; ++i) {
    if ((words[i / 64] >> (i % 64)) & 1) indices.push_back(i);
  }
  return indices;
}

// --- the migration capability --------------------------------------------------------------

// The rig's type1 info with the migration capability the kernel adds (vfio_iommu_type1.c:
// flags 0, the smallest IOMMU page size, DIRTY_BITMAP_SIZE_MAX = 256 MiB).
InfoBuilder info_with_migration() {
  InfoBuilder b(24 + 32 + 12);
  b.u32(0, 68)
      .u32(4, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS)
      .u64(8, 0x40201000)
      .u32(16, 24);
  b.cap(24, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 56).u32(32, 0).u64(40, 0x1000).u64(48, 256 << 20);
  b.cap(56, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 0).u32(64, 65535);
  return b;
}

TEST(VfioDirtyCaps, TheMigrationCapabilityIsParsedWithItsLimits) {
  const Type1Info info = parse_type1_info(info_with_migration().bytes());
  ASSERT_TRUE(info.migration);
  EXPECT_EQ(*info.migration, (Type1Migration{0, 0x1000, 256u << 20}));
  EXPECT_EQ(info.dma_available, 65535u);
  const DirtyTrackingSupport support = dirty_tracking_support(info, true);
  EXPECT_TRUE(support.supported);
  EXPECT_EQ(support.page_size, kPage);
  EXPECT_EQ(support.max_bitmap_bytes, 256u << 20);
  EXPECT_EQ(support.reason, "");
}

TEST(VfioDirtyCaps, ATruncatedMigrationCapabilityIsAnError) {
  // The header fits, its 24 bytes of body do not.
  EXPECT_THROW(parse_type1_info(info_with_migration().truncated(40)), Error);
}

TEST(VfioDirtyCaps, TheSmallestOfSeveralPageSizesIsTheOneUsed) {
  Type1Info info;
  info.migration = Type1Migration{0, 0x40201000, 1024};
  EXPECT_EQ(dirty_tracking_support(info, true).page_size, kPage);
  info.migration->pgsize_bitmap = 0x10000;
  EXPECT_EQ(dirty_tracking_support(info, true).page_size, 0x10000u);
}

TEST(VfioDirtyCaps, AnAbsentCapabilityOrType1IsUnsupportedWithTheReason) {
  Type1Info info;
  info.iova_pgsizes = 0x40201000;
  const DirtyTrackingSupport absent = dirty_tracking_support(info, true);
  EXPECT_FALSE(absent.supported);
  EXPECT_NE(absent.reason.find("VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION"), std::string::npos);
  EXPECT_NE(absent.reason.find("5.8"), std::string::npos);
  info.migration = Type1Migration{0, 0x1000, 1024};
  const DirtyTrackingSupport v1 = dirty_tracking_support(info, false);
  EXPECT_FALSE(v1.supported);
  EXPECT_NE(v1.reason.find("type1v2"), std::string::npos);
  info.migration->pgsize_bitmap = 0;
  const DirtyTrackingSupport no_pages = dirty_tracking_support(info, true);
  EXPECT_FALSE(no_pages.supported);
  EXPECT_EQ(no_pages.page_size, 0u);
  EXPECT_NE(no_pages.reason.find("no page size"), std::string::npos);
}

// --- the pure helpers --------------------------------------------------------------------------

TEST(VfioDirtyBitmap, BitmapBytesAreWholeU64WordsForEveryPageCount) {
  for (std::uint64_t pages = 0; pages <= 4096; ++pages) {
    EXPECT_EQ(dirty_bitmap_bytes(pages), (pages + 63) / 64 * 8) << pages;
    EXPECT_EQ(dirty_bitmap_bytes(pages) % 8, 0u);
  }
  EXPECT_EQ(dirty_bitmap_bytes(1), 8u);
  EXPECT_EQ(dirty_bitmap_bytes(64), 8u);
  EXPECT_EQ(dirty_bitmap_bytes(65), 16u);
  // The kernel's DIRTY_BITMAP_SIZE_MAX: INT_MAX pages.
  EXPECT_EQ(dirty_bitmap_bytes(0x7fffffff), 256u << 20);
  EXPECT_EQ(dirty_bitmap_bytes(~std::uint64_t{0}), std::uint64_t{1} << 61);  // no overflow
}

TEST(VfioDirtyBitmap, EveryPatternOfTwoWordsDecodesAsBitByBit) {
  // Every 16-bit pattern, spread over the low and high ends of two words (so word boundaries
  // and bit 63 are covered), for page counts that end inside, at and past each word.
  for (std::uint32_t pattern = 0; pattern < 0x10000; ++pattern) {
    std::vector<std::uint64_t> words(2, 0);
    for (unsigned bit = 0; bit < 16; ++bit) {
      if (!((pattern >> bit) & 1)) continue;
      const unsigned index = bit < 4    ? bit
                             : bit < 8  ? 60 + (bit - 4)
                             : bit < 12 ? 64 + (bit - 8)
                                        : 124 + (bit - 12);
      words[index / 64] |= std::uint64_t{1} << (index % 64);
    }
    for (const std::uint64_t pages : {1u, 3u, 61u, 63u, 64u, 65u, 67u, 125u, 127u, 128u}) {
      const auto expected = naive_indices(words, pages);
      ASSERT_EQ(dirty_page_indices(words, pages), expected) << pattern << " " << pages;
    }
  }
}

TEST(VfioDirtyBitmap, IovasAndRunsFollowTheIndicesForEveryPatternOfTwelvePages) {
  constexpr std::uint64_t kBase = 0x100000;
  for (std::uint64_t pattern = 0; pattern < 0x1000; ++pattern) {
    const std::vector<std::uint64_t> words{pattern};
    const auto indices = naive_indices(words, 12);
    std::vector<std::uint64_t> iovas;
    for (auto i : indices) iovas.push_back(kBase + i * kPage);
    ASSERT_EQ(dirty_iovas(words, kBase, kPage, 12), iovas);
    // Runs: each maximal run of set bits, as an inclusive IOVA range.
    std::vector<IovaRange> runs;
    for (std::uint64_t i = 0; i < 12;) {
      if (!((pattern >> i) & 1)) {
        ++i;
        continue;
      }
      std::uint64_t end = i;
      while (end + 1 < 12 && ((pattern >> (end + 1)) & 1)) ++end;
      runs.push_back({kBase + i * kPage, kBase + (end + 1) * kPage - 1});
      i = end + 1;
    }
    ASSERT_EQ(dirty_ranges(words, kBase, kPage, 12), runs) << pattern;
    DirtyBitmap bitmap{kBase, kPage, 12, words};
    ASSERT_EQ(bitmap.dirty_count(), indices.size());
  }
}

TEST(VfioDirtyBitmap, RandomLongBitmapsDecodeAsBitByBit) {
  std::mt19937_64 random(14);
  for (int round = 0; round < 200; ++round) {
    const std::uint64_t pages = 1 + random() % 2000;
    std::vector<std::uint64_t> words(dirty_bitmap_bytes(pages) / 8);
    for (auto& w : words) w = random() & random();  // sparse-ish
    ASSERT_EQ(dirty_page_indices(words, pages), naive_indices(words, pages));
  }
}

TEST(VfioDirtyBitmap, BitsPastThePagesAreIgnoredAndAShortBitmapIsAnError) {
  const std::vector<std::uint64_t> all(2, ~std::uint64_t{0});
  EXPECT_EQ(dirty_page_indices(all, 3), (std::vector<std::uint64_t>{0, 1, 2}));
  EXPECT_EQ(dirty_page_indices(all, 0), std::vector<std::uint64_t>{});
  EXPECT_EQ(dirty_page_indices(all, 128).size(), 128u);
  EXPECT_THROW(dirty_page_indices(all, 129), Error);
  EXPECT_THROW(dirty_page_indices({}, 1), Error);
  EXPECT_EQ(dirty_ranges(all, 0, kPage, 128), (std::vector<IovaRange>{{0, 128 * kPage - 1}}));
}

// --- checks before the ioctl -------------------------------------------------------------------

DirtyTrackingSupport rig_support() { return {true, kPage, 256u << 20, ""}; }

TEST(VfioDirtyRequest, AGoodRangeGivesThePagesAndTheBitmapSize) {
  const std::vector<IovaRange> mappings{{0x10000, 0x1ffff}, {0x40000, 0x40fff}};
  const DirtyBitmapRequest r =
      check_dirty_bitmap_request(rig_support(), 0x10000, 0x31000, kPage, mappings);
  EXPECT_EQ(r.pages, 0x31u);
  EXPECT_EQ(r.bitmap_bytes, 8u);
  EXPECT_EQ(check_dirty_bitmap_request(rig_support(), 0, 65 * kPage, kPage, {}).bitmap_bytes, 16u);
}

TEST(VfioDirtyRequest, MisalignmentNamesIovaSizePageSizeAndTheAlignedRange) {
  const Error e =
      error_of([] { check_dirty_bitmap_request(rig_support(), 0x10800, 0x1000, kPage, {}); });
  EXPECT_EQ(e.context_value("iova"), "0x10800");
  EXPECT_EQ(e.context_value("size"), "0x1000");
  EXPECT_EQ(e.context_value("page_size"), "4 KiB");
  EXPECT_NE(e.message().find("multiples of the page size"), std::string::npos) << e.what();
  EXPECT_NE(e.hint().find("iova 0x10000, size 0x2000"), std::string::npos) << e.hint();
  const Error size =
      error_of([] { check_dirty_bitmap_request(rig_support(), 0x10000, 0x1001, kPage, {}); });
  EXPECT_NE(size.hint().find("iova 0x10000, size 0x2000"), std::string::npos) << size.hint();
}

TEST(VfioDirtyRequest, APageSizeOtherThanTheCapabilitysIsRefusedWithTheOneToUse) {
  const Error e =
      error_of([] { check_dirty_bitmap_request(rig_support(), 0, 0x200000, 0x200000, {}); });
  EXPECT_NE(e.message().find("page size 2 MiB"), std::string::npos) << e.what();
  EXPECT_NE(e.hint().find("ask in 4 KiB pages"), std::string::npos) << e.hint();
}

TEST(VfioDirtyRequest, EmptyWrappingAndOversizedRangesAreRefused) {
  EXPECT_NE(error_of([] { check_dirty_bitmap_request(rig_support(), 0, 0, kPage, {}); })
                .message()
                .find("empty"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              check_dirty_bitmap_request(rig_support(), 0xfffffffffffff000, 0x2000, kPage, {});
            })
                .message()
                .find("wraps"),
            std::string::npos);
  DirtyTrackingSupport small = rig_support();
  small.max_bitmap_bytes = 8;  // 64 pages at most
  EXPECT_NO_THROW(check_dirty_bitmap_request(small, 0, 64 * kPage, kPage, {}));
  const Error big = error_of([&] { check_dirty_bitmap_request(small, 0, 65 * kPage, kPage, {}); });
  EXPECT_NE(big.message().find("65 pages need a 16 B bitmap"), std::string::npos) << big.what();
  EXPECT_NE(big.hint().find("at most 0x40000 bytes"), std::string::npos) << big.hint();
}

TEST(VfioDirtyRequest, ARangeThatCutsAMappingIsRefusedNamingIt) {
  const std::vector<IovaRange> mappings{{0x10000, 0x13fff}};
  for (const auto& [iova, size] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
           {0x11000, 0x1000}, {0x10000, 0x1000}, {0x13000, 0x2000}, {0xf000, 0x2000}}) {
    const Error e =
        error_of([&] { check_dirty_bitmap_request(rig_support(), iova, size, kPage, mappings); });
    EXPECT_NE(e.message().find("cuts the DMA mapping 0x10000-0x13fff"), std::string::npos)
        << e.what();
  }
  // Whole, or not at all: fine.
  EXPECT_NO_THROW(check_dirty_bitmap_request(rig_support(), 0x10000, 0x4000, kPage, mappings));
  EXPECT_NO_THROW(check_dirty_bitmap_request(rig_support(), 0xf000, 0x6000, kPage, mappings));
  EXPECT_NO_THROW(check_dirty_bitmap_request(rig_support(), 0x14000, 0x1000, kPage, mappings));
  EXPECT_NO_THROW(check_dirty_bitmap_request(rig_support(), 0xf000, 0x1000, kPage, mappings));
}

TEST(VfioDirtyRequest, UnsupportedTrackingIsRefusedWithItsReason) {
  DirtyTrackingSupport none;
  none.reason = "no migration capability";
  const Error e = error_of([&] { check_dirty_bitmap_request(none, 0, kPage, kPage, {}); });
  EXPECT_NE(e.message().find("no migration capability"), std::string::npos);
}

// --- start, get, stop against the fake type1 ------------------------------------------------

struct Mapped {
  std::vector<std::uint8_t> memory = std::vector<std::uint8_t>(16 * kPage);
  DmaMapping low, high;
  explicit Mapped(FakeType1Backend& backend)
      // Four pages at 0x10000, two at 0x20000, a gap between them.
      : low(backend.map(memory.data(), 0x10000, 4 * kPage, DmaDirection::bidirectional)),
        high(backend.map(memory.data() + 4 * kPage, 0x20000, 2 * kPage,
                         DmaDirection::bidirectional)) {}
};

TEST(VfioDirtyTracking, StartGetStopSendTheKernelsLayout) {
  FakeType1Backend backend;
  Mapped mapped(backend);
  {
    DirtyPageTracking tracking = DirtyPageTracking::start(backend);
    EXPECT_TRUE(backend.tracking);
    EXPECT_EQ(tracking.support().page_size, kPage);
    tracking.get(0x10000, 0x12000);
  }
  EXPECT_FALSE(backend.tracking);  // the destructor stopped it
  ASSERT_EQ(backend.requests.size(), 3u);
  EXPECT_EQ(backend.requests[0].argsz, 8u);
  EXPECT_EQ(backend.requests[0].flags, unsigned{VFIO_IOMMU_DIRTY_PAGES_FLAG_START});
  const auto& get = backend.requests[1];
  EXPECT_EQ(get.argsz, 48u);  // header + vfio_iommu_type1_dirty_bitmap_get, not the bitmap
  EXPECT_EQ(get.flags, unsigned{VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP});
  EXPECT_EQ(get.iova, 0x10000u);
  EXPECT_EQ(get.size, 0x12000u);
  EXPECT_EQ(get.pgsize, kPage);
  EXPECT_EQ(get.bitmap_size, 8u);  // 18 pages: one u64
  EXPECT_TRUE(get.bitmap_data);
  EXPECT_EQ(backend.requests[2].argsz, 8u);
  EXPECT_EQ(backend.requests[2].flags, unsigned{VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP});
}

TEST(VfioDirtyTracking, WithAVfioPciDeviceEveryMappedPageIsDirtyOnEveryGet) {
  FakeType1Backend backend;
  Mapped mapped(backend);
  DirtyPageTracking tracking = DirtyPageTracking::start(backend);
  const std::vector<std::uint64_t> mapped_pages{0, 1, 2, 3, 16, 17};  // from 0x10000
  const DirtyBitmap first = tracking.get(0x10000, 0x12000);
  EXPECT_EQ(first.page_indices(), mapped_pages);
  EXPECT_EQ(first.ranges(), (std::vector<IovaRange>{{0x10000, 0x13fff}, {0x20000, 0x21fff}}));
  const DirtyBitmap again = tracking.get(0x10000, 0x12000);
  EXPECT_EQ(again.page_indices(), mapped_pages);
  // One mapping alone, at the start of its own bitmap.
  EXPECT_EQ(tracking.get(0x20000, 0x2000).iovas(), (std::vector<std::uint64_t>{0x20000, 0x21000}));
  tracking.stop();
  EXPECT_FALSE(tracking);
  EXPECT_FALSE(backend.tracking);
}

TEST(VfioDirtyTracking, ADeviceThatPinsPagesGetsOnlyThoseReported) {
  FakeType1Backend backend;
  backend.device_reports_dirtying = true;
  Mapped mapped(backend);
  DirtyPageTracking tracking = DirtyPageTracking::start(backend);
  EXPECT_EQ(tracking.get(0x10000, 0x12000).dirty_count(), 0u);
  backend.pin(0x12000);
  backend.pin(0x21000);
  EXPECT_EQ(tracking.get(0x10000, 0x12000).iovas(), (std::vector<std::uint64_t>{0x12000, 0x21000}));
  backend.unpin(0x12000);
  EXPECT_EQ(tracking.get(0x10000, 0x12000).iovas(), (std::vector<std::uint64_t>{0x21000}));
}

TEST(VfioDirtyTracking, BadRangesAreRefusedBeforeTheIoctl) {
  FakeType1Backend backend;
  Mapped mapped(backend);
  DirtyPageTracking tracking = DirtyPageTracking::start(backend);
  const std::size_t sent = backend.requests.size();
  const Error cut = error_of([&] { tracking.get(0x11000, 0x1000); });
  EXPECT_NE(cut.message().find("cuts the DMA mapping 0x10000-0x13fff"), std::string::npos);
  EXPECT_EQ(cut.context_value("iova"), "0x11000");
  EXPECT_THROW(tracking.get(0x10800, 0x1000), Error);
  EXPECT_THROW(tracking.get(0x10000, 0), Error);
  EXPECT_EQ(backend.requests.size(), sent);
  // The fake kernel refuses the same requests when they do reach it, as type1 does.
  std::uint64_t word = 0;
  auto get = [&](std::uint64_t iova, std::uint64_t size, std::uint64_t pgsize,
                 std::uint64_t bitmap_size) {
    iommu::uapi::DirtyPagesRequest raw{};
    raw.argsz = iommu::uapi::kDirtyPagesGetSize;
    raw.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    raw.range = {iova, size, {pgsize, bitmap_size, reinterpret_cast<__u64*>(&word)}};
    return backend.send(raw);
  };
  EXPECT_EQ(get(0x10000, 0x12000, kPage, 8), 0);
  EXPECT_EQ(get(0x11000, 0x1000, kPage, 8), -EINVAL);      // cuts a mapping
  EXPECT_EQ(get(0x10800, 0x1000, kPage, 8), -EINVAL);      // misaligned
  EXPECT_EQ(get(0x10000, 0x12000, 0x200000, 8), -EINVAL);  // not the smallest page size
  EXPECT_EQ(get(0x10000, 0x48000, kPage, 8), -EINVAL);     // 72 pages need 16 bytes
  iommu::uapi::DirtyPagesRequest two{};
  two.argsz = 8;
  two.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
  EXPECT_EQ(backend.send(two), -EINVAL);
  two.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;  // argsz without the range
  EXPECT_EQ(backend.send(two), -EINVAL);
}

TEST(VfioDirtyTracking, AnAbsentCapabilityRefusesStartWithTheReasonAndSendsNothing) {
  FakeType1Backend backend;
  backend.migration_capability = false;
  const Error e = error_of([&] { DirtyPageTracking::start(backend); });
  EXPECT_NE(e.message().find("VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION"), std::string::npos) << e.what();
  EXPECT_NE(e.hint().find("type1v2"), std::string::npos);
  EXPECT_TRUE(backend.requests.empty());
  FakeType1Backend v1;
  v1.type1v2 = false;
  EXPECT_THROW(DirtyPageTracking::start(v1), Error);
  EXPECT_TRUE(v1.requests.empty());
}

TEST(VfioDirtyTracking, OneTrackingPerContainerAndTheKernelsRefusalIsNamed) {
  FakeType1Backend backend;
  DirtyPageTracking tracking = DirtyPageTracking::start(backend);
  const Error twice = error_of([&] { DirtyPageTracking::start(backend); });
  EXPECT_NE(twice.message().find("already on"), std::string::npos);
  EXPECT_EQ(backend.requests.size(), 1u);
  // Started underneath (another process with the container): the kernel's EINVAL, named.
  FakeType1Backend other;
  other.tracking = true;
  const Error refused = error_of([&] { DirtyPageTracking::start(other); });
  EXPECT_EQ(refused.errno_value(), EINVAL);
  EXPECT_NE(std::string(refused.what()).find("VFIO_IOMMU_DIRTY_PAGES"), std::string::npos);
  EXPECT_NE(refused.hint().find("already be on"), std::string::npos);
}

TEST(VfioDirtyTracking, MovesKeepOneOwnerThatStopsOnce) {
  FakeType1Backend backend;
  Mapped mapped(backend);
  DirtyPageTracking outer;
  EXPECT_FALSE(outer);
  {
    DirtyPageTracking inner = DirtyPageTracking::start(backend);
    outer = std::move(inner);
    EXPECT_FALSE(inner);  // NOLINT(bugprone-use-after-move): checking the moved-from state
  }
  EXPECT_TRUE(backend.tracking);
  DirtyPageTracking moved(std::move(outer));
  EXPECT_EQ(moved.get(0x20000, 0x2000).dirty_count(), 2u);
  EXPECT_THROW(outer.get(0x20000, 0x2000), Error);  // NOLINT(bugprone-use-after-move)
  moved = DirtyPageTracking();
  EXPECT_FALSE(backend.tracking);
  std::size_t stops = 0;
  for (const auto& r : backend.requests) stops += r.flags == VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
  EXPECT_EQ(stops, 1u);
  // Started again once stopped.
  EXPECT_NO_THROW(DirtyPageTracking::start(backend));
}

TEST(VfioDirtyTracking, ABackendThatGoesFirstStopsAndDetachesTheTracking) {
  auto backend = std::make_unique<FakeType1Backend>();
  DirtyPageTracking tracking = DirtyPageTracking::start(*backend);
  backend.reset();
  EXPECT_FALSE(tracking);  // detached: its destructor sends nothing to a backend that is gone
}

TEST(VfioDirtyTracking, ABackendWithoutDirtyTrackingSaysWhich) {
  class Plain final : public IommuBackend {
   public:
    ~Plain() override { release_all_mappings(); }
    std::string_view name() const override { return "iommufd"; }
    UniqueFd open_device(const pci::Bdf&) override { return {}; }
    IommuInfo info() override { return {}; }

   protected:
    void map_raw(std::uint64_t, std::uint64_t, std::uint64_t, DmaDirection) override {}
    std::uint64_t unmap_raw(std::uint64_t, std::uint64_t size) override { return size; }
  } plain;
  EXPECT_NE(plain.dirty_tracking_support().reason.find("iommufd IOMMU backend does not log"),
            std::string::npos);
  EXPECT_THROW(DirtyPageTracking::start(plain), Error);
}

}  // namespace
}  // namespace vfiokit::iommu
