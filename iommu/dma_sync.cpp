#include "vfiokit/iommu/dma_sync.h"

#include <cstdint>

namespace vfiokit::iommu {

#if defined(__aarch64__)
namespace {

// The smallest data cache line, from CTR_EL0.DminLine (log2 of 4-byte words).
std::size_t cache_line() noexcept {
  std::uint64_t ctr = 0;
  asm volatile("mrs %0, ctr_el0" : "=r"(ctr));
  return std::size_t{4} << ((ctr >> 16) & 0xf);
}

}  // namespace

void sync_for_device(std::span<const std::byte> range) noexcept {
  const std::size_t line = cache_line();
  auto address = reinterpret_cast<std::uintptr_t>(range.data()) & ~(line - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(range.data()) + range.size();
  for (; address < end; address += line) asm volatile("dc cvac, %0" ::"r"(address) : "memory");
  asm volatile("dsb sy" ::: "memory");
}

void sync_for_cpu(std::span<const std::byte> range) noexcept {
  const std::size_t line = cache_line();
  auto address = reinterpret_cast<std::uintptr_t>(range.data()) & ~(line - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(range.data()) + range.size();
  // dc ivac is privileged; clean+invalidate is what user space may do, and is as good here.
  for (; address < end; address += line) asm volatile("dc civac, %0" ::"r"(address) : "memory");
  asm volatile("dsb sy" ::: "memory");
}
#else
// x86: DMA snoops the caches. The compiler barrier keeps the calls meaningful as sequence points.
void sync_for_device(std::span<const std::byte>) noexcept { asm volatile("" ::: "memory"); }
void sync_for_cpu(std::span<const std::byte>) noexcept { asm volatile("" ::: "memory"); }
#endif

}  // namespace vfiokit::iommu
