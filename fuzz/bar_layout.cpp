// Guest BAR layout (vmm/bar_layout.h): any set of BARs, in the VMM's windows or in fuzzed ones.
//
// Invariants: sizes that are not powers of two are refused; otherwise every BAR placed is
// naturally aligned (memory BARs to at least a page), lies wholly inside the window for its kind
// (a 64-bit BAR in either memory window), overlaps no other BAR placed in the same window, and
// the result lists each BAR once, in index order.
#include <algorithm>
#include <bit>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/vmm/bar_layout.h"

namespace vfiokit::vmm {
namespace {

using u128 = unsigned __int128;

struct Window {
  std::uint64_t start, end;
  [[nodiscard]] bool holds(std::uint64_t address, std::uint64_t size) const {
    return address >= start && u128{address} + size - 1 <= end;
  }
};

Window fuzzed_window(FuzzedDataProvider& data) {
  const std::uint64_t a = fuzz::edgy_u64(data), b = fuzz::edgy_u64(data);
  return {std::min(a, b), std::max(a, b)};
}

}  // namespace
}  // namespace vfiokit::vmm

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::vmm;
  FuzzedDataProvider data(bytes, size);
  BarWindows windows;
  if (data.ConsumeBool()) {
    const Window mmio32 = fuzzed_window(data), mmio64 = fuzzed_window(data),
                 io = fuzzed_window(data);
    windows = {mmio32.start, mmio32.end, mmio64.start, mmio64.end, io.start, io.end};
  }
  const Window mmio32{windows.mmio32_start, windows.mmio32_end};
  const Window mmio64{windows.mmio64_start, windows.mmio64_end};
  const Window io{windows.io_start, windows.io_end};
  // Where the two memory windows overlap, BARs placed in different ones may too: the caller's
  // choice, not the layout's fault.
  const bool memory_windows_disjoint = mmio32.end < mmio64.start || mmio64.end < mmio32.start;

  std::vector<BarSpec> bars;
  const auto count = data.ConsumeIntegralInRange<unsigned>(0, 7);
  bool all_powers_of_two = true;
  for (unsigned i = 0; i < count; ++i) {
    BarSpec bar;
    bar.index = data.ConsumeIntegralInRange<unsigned>(0, 6);
    bar.kind = static_cast<vfiokit::pci::BarKind>(data.ConsumeIntegralInRange<int>(0, 2));
    bar.prefetchable = data.ConsumeBool();
    bar.size = data.ConsumeBool() ? std::uint64_t{1} << data.ConsumeIntegralInRange<int>(0, 63)
                                  : vfiokit::fuzz::edgy_u64(data);
    all_powers_of_two &= std::has_single_bit(bar.size);
    bars.push_back(bar);
  }

  std::vector<GuestBar> placed;
  try {
    placed = assign_bars(bars, windows);
  } catch (const vfiokit::Error&) {
    return 0;  // does not fit, or a size that is not a power of two
  }
  FUZZ_CHECK(all_powers_of_two);
  FUZZ_CHECK(placed.size() == bars.size());
  for (std::size_t i = 0; i < placed.size(); ++i) {
    const GuestBar& bar = placed[i];
    if (i > 0) FUZZ_CHECK(placed[i - 1].spec.index <= bar.spec.index);
    const bool is_io = bar.spec.kind == vfiokit::pci::BarKind::io;
    const std::uint64_t room = is_io ? bar.spec.size : std::max<std::uint64_t>(bar.spec.size, 4096);
    FUZZ_CHECK(bar.address % room == 0);
    const bool in32 = mmio32.holds(bar.address, room), in64 = mmio64.holds(bar.address, room);
    if (is_io) {
      FUZZ_CHECK(io.holds(bar.address, room));
    } else if (bar.spec.kind == vfiokit::pci::BarKind::mem32) {
      FUZZ_CHECK(in32);
    } else {
      FUZZ_CHECK(in32 || in64);
    }
    for (std::size_t j = 0; j < i; ++j) {
      const GuestBar& other = placed[j];
      if ((other.spec.kind == vfiokit::pci::BarKind::io) != is_io) continue;
      if (!is_io && !memory_windows_disjoint) continue;
      const std::uint64_t other_room =
          is_io ? other.spec.size : std::max<std::uint64_t>(other.spec.size, 4096);
      const bool disjoint = u128{bar.address} + room <= other.address ||
                            u128{other.address} + other_room <= bar.address;
      FUZZ_CHECK(disjoint);
    }
  }
  return 0;
}
