// Runs inside the rig: how long until a buffer is ready for DMA, two ways, side by side.
//   naive:   4 KiB pages, faulted in by the pinning inside each map call, one map per page
//   vfiokit: hugepages where possible, prefaulted by parallel threads, one coalesced map
// Sizes 256 MiB and 1 GiB, three interleaved rounds each; prints medians and the ratio.
// The naive way needs more mappings than dma_entry_limit allows by default (65535), so the
// bench raises the limit first, and reserves hugepages for the vfiokit way.
//   dma_bench VENDOR:DEVICE   (the device is bound to vfio-pci first)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_support.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/iommu/dma.h"
#include "vfiokit/vfio/open.h"

using namespace vfiokit;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double naive(iommu::IommuBackend& backend, std::size_t size) {
  const auto start = Clock::now();
  const auto buffer =
      iommu::DmaBuffer::allocate(size, {.allow_huge_pages = false, .prefault = false});
  std::vector<iommu::DmaMapping> pages;
  pages.reserve(size / 4096);
  for (std::size_t offset = 0; offset < size; offset += 4096) {
    pages.push_back(backend.map(buffer.bytes().data() + offset, 0x100000000 + offset, 4096,
                                iommu::DmaDirection::bidirectional));
  }
  return ms_since(start);  // ready; the unmaps that follow are not counted
}

double vfiokit_way(iommu::IommuBackend& backend, std::size_t size, iommu::PageBacking& backing) {
  const auto start = Clock::now();
  const auto buffer =
      iommu::DmaBuffer::allocate(size, {.allow_huge_pages = true, .prefault = true});
  const auto mapping =
      backend.map(buffer.data(), 0x100000000, buffer.size(), iommu::DmaDirection::bidirectional);
  backing = buffer.backing();
  return ms_since(start);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dma_bench VENDOR:DEVICE\n");
    return 2;
  }
  try {
    write_attribute("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit", "1048576");
    write_attribute("/proc/sys/vm/nr_hugepages", "600");
    vfio::OpenedDevice opened = vfio::open_vfio_device({}, bench::bound_device(argv[1]));
    std::printf(
        "DMA-ready time: allocate, fault in, pin and map (emulated time: compare ratios)\n");
    for (const std::size_t size : {std::size_t{256} << 20, std::size_t{1} << 30}) {
      std::vector<double> slow, fast;
      iommu::PageBacking backing = iommu::PageBacking::small;
      for (int round = 0; round < 3; ++round) {
        if (round % 2 == 0) {
          slow.push_back(naive(*opened.backend, size));
          fast.push_back(vfiokit_way(*opened.backend, size, backing));
        } else {
          fast.push_back(vfiokit_way(*opened.backend, size, backing));
          slow.push_back(naive(*opened.backend, size));
        }
      }
      std::printf(
          "  %4zu MiB  naive (4K pages, %zu maps) %9.1f ms   vfiokit (%s, 1 map) %8.1f ms   "
          "ratio naive/vfiokit %6.1f\n",
          size >> 20, size / 4096, median(slow), std::string(iommu::to_string(backing)).c_str(),
          median(fast), median(slow) / median(fast));
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "dma_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
