// DMA ownership without a kernel: a fake backend records map/unmap, so the order of teardown
// (unmap before the IOVA is freed before the memory is freed) and the backend's release of
// mappings that outlive it are checked exactly.
#include "vfiokit/iommu/dma.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"

namespace vfiokit::iommu {
namespace {

class FakeBackend final : public IommuBackend {
 public:
  FakeBackend() = default;
  // Records into `outside` too, which survives the backend.
  explicit FakeBackend(std::vector<std::string>* outside) : outside_(outside) {}
  ~FakeBackend() override { release_all_mappings(); }
  std::string_view name() const override { return "fake"; }
  UniqueFd open_device(const pci::Bdf&) override { return {}; }
  IommuInfo info() override { return info_; }

  IommuInfo info_{"fake", 0x40201000, {{0, 0xfedfffff}, {0xfef00000, 0xffffffffff}}, 100};
  std::vector<std::string> log;
  int fail_unmap_short = 0;

 protected:
  void map_raw(std::uint64_t, std::uint64_t iova, std::uint64_t size, DmaDirection) override {
    record("map " + hex(iova) + " " + hex(size));
  }
  std::uint64_t unmap_raw(std::uint64_t iova, std::uint64_t size) override {
    record("unmap " + hex(iova) + " " + hex(size));
    return fail_unmap_short ? size - 4096 : size;
  }

 private:
  void record(std::string line) {
    if (outside_) outside_->push_back(line);
    log.push_back(std::move(line));
  }
  std::vector<std::string>* outside_ = nullptr;
};

TEST(DmaBuffer, SmallBuffersUseSmallPagesAndArePrefaulted) {
  const DmaBuffer buffer = DmaBuffer::allocate(10000, {.allow_huge_pages = true});
  EXPECT_EQ(buffer.backing(), PageBacking::small);
  EXPECT_EQ(buffer.size(), 12288u);  // rounded up to whole pages
  EXPECT_EQ(buffer.bytes()[0], 0);
  EXPECT_THROW(DmaBuffer::allocate(0), Error);
}

TEST(DmaBuffer, LargeBuffersAreHugePageAligned) {
  const DmaBuffer buffer = DmaBuffer::allocate(3u << 20, {.prefault_threads = 2});
  EXPECT_NE(buffer.backing(), PageBacking::small);  // hugetlb if reserved, else THP
  EXPECT_EQ(buffer.size(), 4u << 20);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buffer.data()) % (2u << 20), 0u);
  const DmaBuffer small = DmaBuffer::allocate(3u << 20, {.allow_huge_pages = false});
  EXPECT_EQ(small.backing(), PageBacking::small);
  EXPECT_EQ(small.size(), 3u << 20);
}

TEST(DmaSpace, RegionsAreMappedUnderTheMaskAndUnmappedBeforeTheIovaIsReused) {
  FakeBackend backend;
  DmaSpace space(backend, (std::uint64_t{1} << 28) - 1);
  std::uint64_t first_iova;
  {
    const DmaRegion region = space.allocate(4096);
    first_iova = region.iova();
    EXPECT_EQ(first_iova, 0x1000u);
    EXPECT_EQ(space.iovas().mappings_left(), 99u);
    EXPECT_EQ(backend.live_mappings(), 1u);
  }
  EXPECT_EQ(backend.log, (std::vector<std::string>{"map 0x1000 0x1000", "unmap 0x1000 0x1000"}));
  EXPECT_EQ(space.iovas().mappings_left(), 100u);
  EXPECT_EQ(backend.live_mappings(), 0u);
  const DmaRegion again = space.allocate(4096);
  EXPECT_EQ(again.iova(), first_iova);
}

TEST(DmaSpace, HugeBuffersGetHugeAlignedIovas) {
  FakeBackend backend;
  DmaSpace space(backend, ~std::uint64_t{0});
  const DmaRegion small = space.allocate(4096);
  const DmaRegion big = space.allocate(2u << 20);
  EXPECT_EQ(big.iova() % (2u << 20), 0u);
  EXPECT_NE(big.iova(), small.iova());
}

TEST(DmaSpace, TheBackendsBudgetBecomesTheAllocatorsBudget) {
  FakeBackend backend;
  backend.info_.dma_available = 2;
  DmaSpace space(backend, ~std::uint64_t{0});
  const DmaRegion a = space.allocate(4096);
  const DmaRegion b = space.allocate(4096);
  EXPECT_THROW(space.allocate(4096), Error);
}

TEST(DmaMapping, MovesKeepExactlyOneOwner) {
  FakeBackend backend;
  DmaMapping first = backend.map(nullptr, 0x1000, 0x1000, DmaDirection::bidirectional);
  DmaMapping second = std::move(first);
  EXPECT_FALSE(first);
  EXPECT_TRUE(second);
  EXPECT_EQ(backend.live_mappings(), 1u);
  DmaMapping third = backend.map(nullptr, 0x2000, 0x1000, DmaDirection::to_device);
  third = std::move(second);  // third's own mapping is unmapped first
  EXPECT_EQ(backend.log.back(), "unmap 0x2000 0x1000");
  EXPECT_EQ(backend.live_mappings(), 1u);
  third.unmap();
  EXPECT_EQ(backend.live_mappings(), 0u);
  EXPECT_EQ(backend.log.back(), "unmap 0x1000 0x1000");
}

TEST(DmaMapping, AShortUnmapIsAnError) {
  FakeBackend backend;
  DmaMapping mapping = backend.map(nullptr, 0x1000, 0x2000, DmaDirection::bidirectional);
  backend.fail_unmap_short = 1;
  try {
    mapping.unmap();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unmapped 4096 bytes, not 8192"), std::string::npos);
  }
}

TEST(DmaMapping, MappingsThatOutliveTheBackendAreUnmappedByIt) {
  std::vector<std::string> log;
  auto backend = std::make_unique<FakeBackend>(&log);
  DmaMapping orphan = backend->map(nullptr, 0x5000, 0x1000, DmaDirection::bidirectional);
  backend.reset();
  EXPECT_EQ(log, (std::vector<std::string>{"map 0x5000 0x1000", "unmap 0x5000 0x1000"}));
  EXPECT_FALSE(orphan);  // detached: its destructor will not touch the dead backend
}

}  // namespace
}  // namespace vfiokit::iommu
