#include "vfiokit/vmm/bar_layout.h"

#include <algorithm>
#include <bit>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"

namespace vfiokit::vmm {
namespace {

// What is left of a window: from `next` to `end` (inclusive), unless a BAR took its last byte
// (then `next` would have wrapped to 0 at the top of the 64-bit space and looked empty again).
struct WindowCursor {
  std::uint64_t next;
  std::uint64_t end;
  bool full = false;
};

// The next naturally aligned place for `size` in what is left of `window`.
bool place(WindowCursor& window, std::uint64_t size, std::uint64_t& address) {
  if (window.full) return false;
  const std::uint64_t aligned = (window.next + size - 1) & ~(size - 1);
  if (aligned < window.next || aligned > window.end || size - 1 > window.end - aligned) {
    return false;
  }
  address = aligned;
  window.full = size - 1 == window.end - aligned;
  window.next = aligned + size;
  return true;
}

}  // namespace

std::vector<GuestBar> assign_bars(std::span<const BarSpec> bars, const BarWindows& windows) {
  std::vector<BarSpec> order(bars.begin(), bars.end());
  for (const auto& bar : order) {
    if (!std::has_single_bit(bar.size)) {
      throw Error("lay out BARs", "BAR" + std::to_string(bar.index) + " size " + hex(bar.size) +
                                      " is not a power of two");
    }
  }
  // Largest first keeps the natural alignment from wasting space.
  std::stable_sort(order.begin(), order.end(),
                   [](const BarSpec& a, const BarSpec& b) { return a.size > b.size; });
  WindowCursor mmio32{windows.mmio32_start, windows.mmio32_end};
  WindowCursor mmio64{windows.mmio64_start, windows.mmio64_end};
  WindowCursor io{windows.io_start, windows.io_end};
  std::vector<GuestBar> placed;
  for (const BarSpec& bar : order) {
    GuestBar guest{bar, 0};
    // Memory BARs smaller than a page still take a whole page: KVM maps guest memory in pages.
    const std::uint64_t size =
        bar.kind == pci::BarKind::io ? bar.size : std::max<std::uint64_t>(bar.size, 4096);
    bool ok = false;
    if (bar.kind == pci::BarKind::io) {
      ok = place(io, size, guest.address);
    } else {
      ok = place(mmio32, size, guest.address) ||
           (bar.kind == pci::BarKind::mem64 && place(mmio64, size, guest.address));
    }
    if (!ok) {
      throw Error("lay out BARs", "BAR" + std::to_string(bar.index) + " (" + human_size(bar.size) +
                                      ") does not fit in the guest's " +
                                      (bar.kind == pci::BarKind::io ? "I/O" : "MMIO") + " window");
    }
    placed.push_back(guest);
  }
  std::sort(placed.begin(), placed.end(),
            [](const GuestBar& a, const GuestBar& b) { return a.spec.index < b.spec.index; });
  return placed;
}

}  // namespace vfiokit::vmm
