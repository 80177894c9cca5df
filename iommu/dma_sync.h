// Ordering between the CPU and a DMA-capable device, made explicit (contract in docs/dma.md).
//
//   fill a descriptor or buffer in DMA memory
//   sync_for_device(buffer)      // non-coherent CPUs: write dirty cache lines back to memory
//   dma_write_barrier()          // every store above is visible before ...
//   doorbell MMIO write          // ... the device is told to go and read it
//
//   wait for the interrupt or a completion flag in DMA memory
//   dma_read_barrier()           // no load below is satisfied before the flag was seen
//   sync_for_cpu(buffer)         // non-coherent CPUs: drop stale cache lines
//   read what the device wrote
#pragma once

#include <cstddef>
#include <span>

namespace vfiokit::iommu {

inline void dma_write_barrier() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  // Orders write-combining stores too (a BAR mapped WC), not only the TSO-ordered ones.
  asm volatile("sfence" ::: "memory");
#elif defined(__aarch64__)
  asm volatile("dmb oshst" ::: "memory");
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

inline void dma_read_barrier() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("lfence" ::: "memory");
#elif defined(__aarch64__)
  asm volatile("dmb oshld" ::: "memory");
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

// Cache maintenance for non-coherent DMA. On x86 DMA through the IOMMU snoops the CPU caches,
// so both are no-ops there; on arm64 they clean (to the device) or clean+invalidate (from the
// device) every cache line of the range.
void sync_for_device(std::span<const std::byte> range) noexcept;
void sync_for_cpu(std::span<const std::byte> range) noexcept;

}  // namespace vfiokit::iommu
