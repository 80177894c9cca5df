// VFIO_DEVICE_GET_REGION_INFO buffers: flags, size, offset and the capability chain (sparse
// mmap areas, region type, MSI-X mappable).
//
// Invariants: the region never overflows the device fd offset; sparse areas are non-empty,
// inside the region, sorted and disjoint, and the areas to mmap are inside the region too.
// Built from known values (areas given in any order, zero-sized ones mixed in, caps in any
// order), a buffer parses back to exactly those values.
#include <linux/vfio.h>

#include <algorithm>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/vfio/region_info.h"

namespace vfiokit::vfio {
namespace {

void check(const RegionInfo& region) {
  FUZZ_CHECK(region.size == 0 || region.offset <= ~std::uint64_t{0} - region.size);
  if (region.sparse_areas) {
    const auto& areas = *region.sparse_areas;
    for (std::size_t i = 0; i < areas.size(); ++i) {
      FUZZ_CHECK(areas[i].size != 0);
      FUZZ_CHECK(areas[i].offset <= region.size && areas[i].size <= region.size - areas[i].offset);
      if (i > 0) FUZZ_CHECK(areas[i - 1].offset + areas[i - 1].size <= areas[i].offset);
    }
  }
  const auto mappable = region.mappable_areas();
  if (!region.mappable() || region.size == 0) FUZZ_CHECK(mappable.empty());
  for (const SparseArea& area : mappable) {
    FUZZ_CHECK(area.offset <= region.size && area.size <= region.size - area.offset);
  }
  FUZZ_CHECK(!region.flags_text().empty());
  FUZZ_CHECK(!region_name(region.index).empty());
}

void built(FuzzedDataProvider& data) {
  RegionInfo expected;
  expected.index = data.ConsumeIntegralInRange<std::uint32_t>(0, 12);
  expected.size = fuzz::edgy_u64(data);
  expected.offset = data.ConsumeIntegralInRange<std::uint64_t>(
      0, expected.size == 0 ? ~std::uint64_t{0} : ~std::uint64_t{0} - expected.size);
  expected.flags =
      data.ConsumeIntegral<std::uint32_t>() & ~std::uint32_t{VFIO_REGION_INFO_FLAG_CAPS};

  // Disjoint areas carved out of the region left to right, then shuffled, with empty ones that
  // the parser drops.
  std::vector<SparseArea> areas;
  std::vector<SparseArea> listed;
  const bool sparse = data.ConsumeBool();
  std::uint64_t cursor = 0;
  const auto count = data.ConsumeIntegralInRange<int>(0, 8);
  for (int i = 0; sparse && i < count && cursor < expected.size; ++i) {
    const std::uint64_t offset = data.ConsumeIntegralInRange<std::uint64_t>(cursor, expected.size);
    const std::uint64_t size =
        data.ConsumeIntegralInRange<std::uint64_t>(0, expected.size - offset);
    listed.push_back({offset, size});
    if (size != 0) areas.push_back({offset, size});
    cursor = offset + size;
  }
  for (std::size_t i = listed.size(); i > 1; --i) {
    std::swap(listed[i - 1], listed[data.ConsumeIntegralInRange<std::size_t>(0, i - 1)]);
  }
  if (sparse) expected.sparse_areas = areas;
  if (data.ConsumeBool()) {
    expected.type = data.ConsumeIntegral<std::uint32_t>();
    expected.subtype = data.ConsumeIntegral<std::uint32_t>();
  }
  expected.msix_mappable = data.ConsumeBool();

  std::vector<int> order;
  if (sparse) order.push_back(VFIO_REGION_INFO_CAP_SPARSE_MMAP);
  if (expected.type) order.push_back(VFIO_REGION_INFO_CAP_TYPE);
  if (expected.msix_mappable) order.push_back(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
  if (data.ConsumeBool()) order.push_back(0x7fff);  // one this code does not know
  for (std::size_t i = order.size(); i > 1; --i) {
    std::swap(order[i - 1], order[data.ConsumeIntegralInRange<std::size_t>(0, i - 1)]);
  }
  if (!order.empty()) expected.flags |= VFIO_REGION_INFO_FLAG_CAPS;

  std::vector<std::uint8_t> info(32, 0);
  fuzz::put_le(info, 4, expected.flags, 4);
  fuzz::put_le(info, 8, expected.index, 4);
  fuzz::put_le(info, 16, expected.size, 8);
  fuzz::put_le(info, 24, expected.offset, 8);
  std::size_t link = 12;
  for (int id : order) {
    const std::size_t at = info.size() + 8 * data.ConsumeIntegralInRange<std::size_t>(0, 3);
    info.resize(at, 0x5a);
    fuzz::put_le(info, link, at, 4);
    link = at + 4;
    fuzz::put_le(info, at, static_cast<std::uint64_t>(id), 2);
    fuzz::put_le(info, at + 2, 1, 2);
    fuzz::put_le(info, at + 4, 0, 4);
    if (id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
      fuzz::put_le(info, at + 8, listed.size(), 4);
      fuzz::put_le(info, at + 12, 0, 4);
      for (std::size_t i = 0; i < listed.size(); ++i) {
        fuzz::put_le(info, at + 16 + 16 * i, listed[i].offset, 8);
        fuzz::put_le(info, at + 24 + 16 * i, listed[i].size, 8);
      }
    } else if (id == VFIO_REGION_INFO_CAP_TYPE) {
      fuzz::put_le(info, at + 8, *expected.type, 4);
      fuzz::put_le(info, at + 12, *expected.subtype, 4);
    } else if (id == 0x7fff) {
      fuzz::put_le(info, at + 8, data.ConsumeIntegral<std::uint64_t>(), 8);
    }
  }
  fuzz::put_le(info, 0, info.size(), 4);  // argsz

  const RegionInfo parsed = parse_region_info(info);  // well-formed: must not throw
  check(parsed);
  FUZZ_CHECK(parsed.index == expected.index && parsed.flags == expected.flags);
  FUZZ_CHECK(parsed.size == expected.size && parsed.offset == expected.offset);
  FUZZ_CHECK(parsed.sparse_areas == expected.sparse_areas);
  FUZZ_CHECK(parsed.type == expected.type && parsed.subtype == expected.subtype);
  FUZZ_CHECK(parsed.msix_mappable == expected.msix_mappable);
}

}  // namespace
}  // namespace vfiokit::vfio

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  if (data.ConsumeBool()) {
    vfiokit::vfio::built(data);
    return 0;
  }
  const std::vector<std::uint8_t> info = data.ConsumeRemainingBytes<std::uint8_t>();
  try {
    vfiokit::vfio::check(vfiokit::vfio::parse_region_info(info));
  } catch (const vfiokit::Error&) {
  }
  return 0;
}
