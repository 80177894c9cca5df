// KVM's dirty bitmap (KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG): one bit per page of a memory
// slot, in 64-bit words, bit i of word w being page 64 * w + i. Pure decoding and the ranges
// KVM_CLEAR_DIRTY_LOG accepts; the ioctls are Vm's, the policy DirtyTracker's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace vfiokit::kvm {

// Words a slot of `pages` pages needs (the kernel's ALIGN(npages, BITS_PER_LONG) / 8 bytes).
[[nodiscard]] constexpr std::size_t dirty_bitmap_words(std::uint64_t pages) noexcept {
  return static_cast<std::size_t>((pages + 63) / 64);
}

// The pages whose bits are set, lowest first; bits at `pages` and above are ignored (the kernel
// leaves them zero, but a bitmap is not trusted).
std::vector<std::uint64_t> dirty_pages(std::span<const std::uint64_t> bitmap, std::uint64_t pages);

// One KVM_CLEAR_DIRTY_LOG: `pages` pages from `first_page`, whose bits are the bitmap's words
// from `first_page / 64` on.
struct ClearRange {
  std::uint64_t first_page = 0;
  std::uint32_t pages = 0;
  friend bool operator==(const ClearRange&, const ClearRange&) = default;
};

// What the kernel accepts (kvm_clear_dirty_log_protect): first_page a multiple of 64 within the
// slot, the range inside it, and a page count that is a multiple of 64 unless the range ends
// exactly at the slot's end; and not empty.
[[nodiscard]] bool clear_range_valid(std::uint64_t first_page, std::uint64_t count,
                                     std::uint64_t slot_pages) noexcept;

// The ranges to clear after a harvest: runs of non-zero words, merged across gaps of at most
// `max_gap_words` clean words (clearing a clean word is a no-op for the kernel, and copying a
// few hundred bytes more costs less than another ioctl: with one range per run, a scattered
// harvest made one KVM_CLEAR_DIRTY_LOG per dirty word), each valid for clear_range_valid, none
// longer than `max_pages` (a multiple of 64; KVM's num_pages is 32 bits). Together they cover
// every set bit below `pages`; each starts and ends on a word with a set bit.
std::vector<ClearRange> clear_ranges(std::span<const std::uint64_t> bitmap, std::uint64_t pages,
                                     std::uint32_t max_pages = std::uint32_t{1} << 31,
                                     std::size_t max_gap_words = 64);

}  // namespace vfiokit::kvm
