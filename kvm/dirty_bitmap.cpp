#include "vfiokit/kvm/dirty_bitmap.h"

#include <algorithm>
#include <bit>

namespace vfiokit::kvm {

std::vector<std::uint64_t> dirty_pages(std::span<const std::uint64_t> bitmap, std::uint64_t pages) {
  std::vector<std::uint64_t> out;
  const std::size_t words = std::min(bitmap.size(), dirty_bitmap_words(pages));
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t bits = bitmap[w];
    while (bits != 0) {
      const std::uint64_t page = std::uint64_t{w} * 64 + std::uint64_t(std::countr_zero(bits));
      if (page >= pages) break;  // the rest of the last word lies beyond the slot
      out.push_back(page);
      bits &= bits - 1;
    }
  }
  return out;
}

bool clear_range_valid(std::uint64_t first_page, std::uint64_t count,
                       std::uint64_t slot_pages) noexcept {
  if (count == 0 || first_page % 64 != 0 || first_page > slot_pages) return false;
  if (count > slot_pages - first_page) return false;
  return count % 64 == 0 || first_page + count == slot_pages;
}

std::vector<ClearRange> clear_ranges(std::span<const std::uint64_t> bitmap, std::uint64_t pages,
                                     std::uint32_t max_pages, std::size_t max_gap_words) {
  std::vector<ClearRange> out;
  const std::size_t words = std::min(bitmap.size(), dirty_bitmap_words(pages));
  const std::size_t max_words = std::max<std::size_t>(max_pages / 64, 1);
  std::size_t w = 0;
  while (w < words) {
    if (bitmap[w] == 0) {
      ++w;
      continue;
    }
    // [w, end): from a dirty word to just after the last dirty word reachable across gaps of
    // at most max_gap_words clean words, within max_words.
    std::size_t end = w + 1;
    std::size_t next = end;
    while (next < words && next - w < max_words) {
      if (bitmap[next] != 0) {
        end = next + 1;
      } else if (next - end + 1 > max_gap_words) {
        break;
      }
      ++next;
    }
    const std::uint64_t first = std::uint64_t{w} * 64;
    const std::uint64_t count = std::min<std::uint64_t>(std::uint64_t{end - w} * 64, pages - first);
    out.push_back({first, static_cast<std::uint32_t>(count)});
    w = end;
  }
  return out;
}

}  // namespace vfiokit::kvm
