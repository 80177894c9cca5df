// Runs inside the rig: 32-bit MMIO reads per second from edu's identification register,
// through an mmap()ed BAR and through pread on the device fd, interleaved in one run.
//   bar_bench VENDOR:DEVICE [SECONDS]   (edu: 1234:11e8; bound to vfio-pci first)
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "bench/bench_support.h"
#include "vfiokit/base/error.h"
#include "vfiokit/vfio/open.h"
#include "vfiokit/vfio/region.h"

using namespace vfiokit;
using Clock = std::chrono::steady_clock;

namespace {

double reads_per_second(const vfio::Region& bar, double seconds) {
  std::uint64_t reads = 0;
  std::uint32_t sink = 0;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    for (int i = 0; i < 64; ++i) sink ^= bar.read32(0);
    reads += 64;
  }
  if (sink == 0xffffffff) std::puts("");  // keeps the reads observable
  return static_cast<double>(reads) / std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bar_bench VENDOR:DEVICE [SECONDS]\n");
    return 2;
  }
  const double seconds = argc > 2 ? std::atof(argv[2]) : 1.0;
  try {
    vfio::OpenedDevice opened = vfio::open_vfio_device({}, bench::bound_device(argv[1]));
    const vfio::Region mapped(opened.device, 0);
    const vfio::Region trapped(opened.device, 0, vfio::RegionMapping::never);
    if (!mapped.mapped(0, 4)) throw Error("bar_bench", "BAR0 could not be mmap()ed");
    double via_mmap = 0, via_pread = 0;
    for (int round = 0; round < 3; ++round) {  // interleaved, best of three each
      via_mmap = std::max(via_mmap, reads_per_second(mapped, seconds));
      via_pread = std::max(via_pread, reads_per_second(trapped, seconds));
    }
    std::printf("BAR0 32-bit reads per second (emulated time: compare the ratio)\n");
    std::printf("  mmap   %12.0f\n  pread  %12.0f\n  ratio mmap/pread %6.1f\n", via_mmap, via_pread,
                via_mmap / via_pread);
  } catch (const Error& e) {
    std::fprintf(stderr, "bar_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
