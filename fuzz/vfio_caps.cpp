// VFIO info capability chains and VFIO_IOMMU_GET_INFO (type1) buffers, as a damaged or hostile
// kernel interface could return them.
//
// Invariants: a walked chain moves forward only (each header starts at or after the end of the
// one before), every header lies inside the buffer, at most 64 of them, and each reads back as
// the bytes at its offset; type1 info never holds a range that ends before it starts, and
// without the caps flag holds no capability data, and a migration capability parses only
// when its 32 bytes are all inside the buffer. Built from known values (page sizes, IOVA
// ranges, DMA available, migration with its flags, page sizes and bitmap limit, unknown
// capabilities, in any order and spacing), a buffer parses back to exactly those values.
#include <linux/vfio.h>

#include <algorithm>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/iommu/vfio_caps.h"

namespace vfiokit::iommu {
namespace {

void check_chain(InfoBytes info, std::uint32_t first, const std::vector<VfioCapability>& caps) {
  FUZZ_CHECK(caps.size() <= 64);
  FUZZ_CHECK(caps.empty() == (first == 0));
  std::size_t previous_end = 0;
  for (std::size_t i = 0; i < caps.size(); ++i) {
    const VfioCapability& cap = caps[i];
    FUZZ_CHECK(cap.offset >= previous_end);
    FUZZ_CHECK(std::size_t{cap.offset} + 8 <= info.size());
    FUZZ_CHECK(cap.id == fuzz::get_le(info, cap.offset, 2));
    FUZZ_CHECK(cap.version == fuzz::get_le(info, cap.offset + 2u, 2));
    const auto next = fuzz::get_le(info, cap.offset + 4u, 4);
    FUZZ_CHECK(i + 1 == caps.size() ? next == 0 : next == caps[i + 1].offset);
    previous_end = cap.offset + 8u;
  }
}

void raw(FuzzedDataProvider& data) {
  const auto first = data.ConsumeIntegralInRange<std::uint32_t>(0, 0x1000);
  const std::vector<std::uint8_t> bytes = data.ConsumeRemainingBytes<std::uint8_t>();
  try {
    check_chain(bytes, first, walk_vfio_capabilities(bytes, first));
  } catch (const Error&) {
  }
  try {
    const Type1Info info = parse_type1_info(bytes);
    const auto flags = fuzz::get_le(bytes, 4, 4);
    for (const IovaRange& range : info.iova_ranges) FUZZ_CHECK(range.start <= range.end);
    if (!(flags & VFIO_IOMMU_INFO_CAPS)) {
      FUZZ_CHECK(info.iova_ranges.empty() && !info.dma_available && !info.migration);
    }
    if (info.migration) {
      // It came from a capability of the chain whose 32 bytes lie inside the buffer.
      bool found = false;
      for (const VfioCapability& cap :
           walk_vfio_capabilities(bytes, static_cast<std::uint32_t>(fuzz::get_le(bytes, 16, 4)))) {
        if (cap.id != VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION || cap.offset + 32u > bytes.size()) {
          continue;
        }
        found = found ||
                (info.migration->flags == fuzz::get_le(bytes, cap.offset + 8u, 4) &&
                 info.migration->pgsize_bitmap == fuzz::get_le(bytes, cap.offset + 16u, 8) &&
                 info.migration->max_dirty_bitmap_size == fuzz::get_le(bytes, cap.offset + 24u, 8));
      }
      FUZZ_CHECK(found);
    }
    FUZZ_CHECK(info.iova_pgsizes ==
               ((flags & VFIO_IOMMU_INFO_PGSIZES) ? fuzz::get_le(bytes, 8, 8) : 0));
  } catch (const Error&) {
  }
}

// A type1 info buffer laid out the way the kernel would, from fuzzed values.
void built(FuzzedDataProvider& data) {
  Type1Info expected;
  expected.iova_pgsizes = data.ConsumeIntegral<std::uint64_t>();
  const auto range_count = data.ConsumeIntegralInRange<std::size_t>(0, 12);
  for (std::size_t i = 0; i < range_count; ++i) {
    std::uint64_t a = fuzz::edgy_u64(data), b = fuzz::edgy_u64(data);
    expected.iova_ranges.push_back({std::min(a, b), std::max(a, b)});
  }
  const bool with_ranges = !expected.iova_ranges.empty() || data.ConsumeBool();
  if (data.ConsumeBool()) expected.dma_available = data.ConsumeIntegral<std::uint32_t>();
  if (data.ConsumeBool()) {
    expected.migration = Type1Migration{data.ConsumeIntegral<std::uint32_t>(), fuzz::edgy_u64(data),
                                        fuzz::edgy_u64(data)};
  }
  const auto unknown_caps = data.ConsumeIntegralInRange<int>(0, 3);

  // Capabilities in a fuzzed order, each after a fuzzed gap.
  std::vector<int> order;
  if (with_ranges) order.push_back(0);
  if (expected.dma_available) order.push_back(1);
  if (expected.migration) order.push_back(2);
  for (int i = 0; i < unknown_caps; ++i) order.push_back(3);
  for (std::size_t i = order.size(); i > 1; --i) {
    std::swap(order[i - 1], order[data.ConsumeIntegralInRange<std::size_t>(0, i - 1)]);
  }
  std::vector<std::uint8_t> info(24, 0);
  fuzz::put_le(info, 4, VFIO_IOMMU_INFO_PGSIZES | (order.empty() ? 0 : VFIO_IOMMU_INFO_CAPS), 4);
  fuzz::put_le(info, 8, expected.iova_pgsizes, 8);
  std::size_t link = 16;  // where the offset of the next capability goes
  for (int kind : order) {
    const std::size_t at = info.size() + 8 * data.ConsumeIntegralInRange<std::size_t>(0, 4);
    info.resize(at, 0xa5);
    fuzz::put_le(info, link, at, 4);
    link = at + 4;
    switch (kind) {
      case 0:
        fuzz::put_le(info, at, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 2);
        fuzz::put_le(info, at + 8, expected.iova_ranges.size(), 4);
        fuzz::put_le(info, at + 12, 0, 4);
        for (std::size_t i = 0; i < expected.iova_ranges.size(); ++i) {
          fuzz::put_le(info, at + 16 + 16 * i, expected.iova_ranges[i].start, 8);
          fuzz::put_le(info, at + 24 + 16 * i, expected.iova_ranges[i].end, 8);
        }
        break;
      case 1:
        fuzz::put_le(info, at, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 2);
        fuzz::put_le(info, at + 8, *expected.dma_available, 4);
        break;
      case 2:
        fuzz::put_le(info, at, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 2);
        fuzz::put_le(info, at + 8, expected.migration->flags, 4);
        fuzz::put_le(info, at + 12, 0, 4);
        fuzz::put_le(info, at + 16, expected.migration->pgsize_bitmap, 8);
        fuzz::put_le(info, at + 24, expected.migration->max_dirty_bitmap_size, 8);
        break;
      default:
        fuzz::put_le(info, at, data.ConsumeIntegralInRange<std::uint16_t>(4, 0xffff), 2);
        fuzz::put_le(info, at + 8, data.ConsumeIntegral<std::uint64_t>(), 8);
        break;
    }
    fuzz::put_le(info, at + 2, data.ConsumeIntegralInRange<std::uint16_t>(1, 3), 2);
    fuzz::put_le(info, at + 4, 0, 4);
  }
  fuzz::put_le(info, 0, info.size(), 4);  // argsz

  const Type1Info parsed = parse_type1_info(info);  // a well-formed buffer must not throw
  FUZZ_CHECK(parsed.iova_pgsizes == expected.iova_pgsizes);
  FUZZ_CHECK(parsed.iova_ranges == expected.iova_ranges);
  FUZZ_CHECK(parsed.dma_available == expected.dma_available);
  FUZZ_CHECK(parsed.migration == expected.migration);
  check_chain(info, static_cast<std::uint32_t>(fuzz::get_le(info, 16, 4)),
              walk_vfio_capabilities(info, static_cast<std::uint32_t>(fuzz::get_le(info, 16, 4))));
}

}  // namespace
}  // namespace vfiokit::iommu

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  if (data.ConsumeBool()) {
    vfiokit::iommu::built(data);
  } else {
    vfiokit::iommu::raw(data);
  }
  return 0;
}
