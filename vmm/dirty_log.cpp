#include "vfiokit/vmm/dirty_log.h"

#include <algorithm>
#include <cstdio>
#include <iterator>

#include "vfiokit/base/text.h"

namespace vfiokit::vmm {
namespace {

std::string runs_text(std::span<const std::uint64_t> pages, std::size_t max_runs) {
  const std::vector<PageRun> runs = page_runs(pages);
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < runs.size() && i < max_runs; ++i) {
    const std::uint64_t first = runs[i].first_page * kGuestPageSize;
    parts.push_back(runs[i].pages == 1
                        ? hex(first)
                        : hex(first) + "-" + hex(first + runs[i].pages * kGuestPageSize - 1));
  }
  if (runs.size() > max_runs)
    parts.push_back("and " + std::to_string(runs.size() - max_runs) + " more runs");
  return join(parts, ", ");
}

std::string pages_text(std::uint64_t count) {
  return std::to_string(count) + (count == 1 ? " page" : " pages");
}

}  // namespace

std::vector<PageRun> page_runs(std::span<const std::uint64_t> sorted_pages) {
  std::vector<PageRun> runs;
  for (const std::uint64_t page : sorted_pages) {
    if (!runs.empty() && runs.back().first_page + runs.back().pages == page) {
      ++runs.back().pages;
    } else {
      runs.push_back({page, 1});
    }
  }
  return runs;
}

void merge_pages(std::vector<std::uint64_t>& into, std::span<const std::uint64_t> more) {
  std::vector<std::uint64_t> merged;
  merged.reserve(into.size() + more.size());
  std::set_union(into.begin(), into.end(), more.begin(), more.end(), std::back_inserter(merged));
  into = std::move(merged);
}

std::vector<std::uint64_t> guest_pages_of(std::span<const std::uint64_t> iovas,
                                          std::uint64_t page_size) {
  std::vector<std::uint64_t> pages;
  const std::uint64_t per = std::max<std::uint64_t>(page_size / kGuestPageSize, 1);
  for (const std::uint64_t iova : iovas) {
    for (std::uint64_t i = 0; i < per; ++i) pages.push_back(iova / kGuestPageSize + i);
  }
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  return pages;
}

std::string describe_interval(const DirtyInterval& interval) {
  char at[32];
  std::snprintf(at, sizeof at, "%.2f s", interval.elapsed_seconds);
  return std::string(at) + ": vCPU " + pages_text(interval.vcpu_pages) +
         (interval.device_pages ? ", device " + pages_text(*interval.device_pages) : "");
}

std::vector<std::string> describe_dirty_log(const DirtyLogResult& log, std::size_t max_runs) {
  std::vector<std::string> lines;
  lines.push_back("vCPU: " + log.vcpu_mechanism);
  lines.push_back("  " + pages_text(log.vcpu_pages.size()) + " written" +
                  (log.vcpu_pages.empty() ? "" : ": " + runs_text(log.vcpu_pages, max_runs)));
  if (log.device_pages) {
    lines.push_back("device: " + log.device_mechanism);
    lines.push_back(
        "  " + pages_text(log.device_pages->size()) + " reported" +
        (log.device_pages->empty() ? "" : ": " + runs_text(*log.device_pages, max_runs)));
  } else {
    lines.push_back("device: not logged: " + log.device_missing);
  }
  return lines;
}

}  // namespace vfiokit::vmm
