// `launch --dirty-log`: which guest pages were written while the guest ran, by its vCPU (KVM's
// dirty ring or bitmap, kvm/dirty_tracker.h) and by the device (VFIO type1's dirty page log,
// iommu/dirty_pages.h), per interval and over the whole run. Pages are guest-physical page
// numbers (address / 4096); the device's IOVAs are guest-physical addresses, since the VMM
// maps guest RAM at IOVA = GPA.
//
// What the device column means on type1 (docs/dirty-tracking.md): the IOMMU cannot see which
// pages a device writes, so type1 reports every page pinned for DMA, which for the built-in VMM
// is all of guest RAM, at every read. It is an upper bound that is always right, never the set
// the device wrote; a device with its own dirty tracking (VFIO's device feature
// DMA_LOGGING, on some vendor drivers with iommufd) would narrow it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/kvm/dirty_tracker.h"

namespace vfiokit::vmm {

inline constexpr std::uint64_t kGuestPageSize = 4096;

struct PageRun {
  std::uint64_t first_page = 0;
  std::uint64_t pages = 0;
  friend bool operator==(const PageRun&, const PageRun&) = default;
};
// Consecutive pages of a sorted, duplicate-free list as runs, in order. Pure.
std::vector<PageRun> page_runs(std::span<const std::uint64_t> sorted_pages);
// `into` (sorted, no duplicates) with `more` (the same) added. Pure.
void merge_pages(std::vector<std::uint64_t>& into, std::span<const std::uint64_t> more);
// The 4 KiB guest pages a list of dirty IOVAs of `page_size` covers (IOVA = GPA). Pure.
std::vector<std::uint64_t> guest_pages_of(std::span<const std::uint64_t> iovas,
                                          std::uint64_t page_size);

struct DirtyInterval {
  double elapsed_seconds = 0;                 // since the guest started, when the interval ended
  std::uint64_t vcpu_pages = 0;               // written by the vCPU in the interval
  std::optional<std::uint64_t> device_pages;  // reported for the device; nullopt: no device log
};

struct DirtyLogResult {
  std::string vcpu_mechanism;    // kvm::DirtyTracker::description()
  std::string device_mechanism;  // empty when the device's pages are not logged
  std::string device_missing;    // why not, then
  std::vector<DirtyInterval> intervals;
  std::vector<std::uint64_t> vcpu_pages;  // over the whole run, sorted
  std::optional<std::vector<std::uint64_t>> device_pages;
  kvm::DirtyCounters counters;
};

// For people: the mechanisms, the totals, and the pages as runs (at most `max_runs` of them,
// then how many more).
std::vector<std::string> describe_dirty_log(const DirtyLogResult& log, std::size_t max_runs = 8);
// "1.00 s: vCPU 12 pages, device 4096 pages": one interval, as the run goes.
std::string describe_interval(const DirtyInterval& interval);

}  // namespace vfiokit::vmm
