// What iommu/dma_sync.h's inline barriers and the doorbell pattern of docs/dma.md compile to, as
// out-of-line functions with C names that dma_sync_instructions_test.sh finds in the
// disassembly of this object (sync_for_device and sync_for_cpu it reads from the iommu
// library's own dma_sync.cpp object). Built for every architecture; linked into nothing.
#include <cstdint>
#include <span>

#include "vfiokit/iommu/dma_sync.h"

extern "C" {

void vfiokit_probe_dma_write_barrier() { vfiokit::iommu::dma_write_barrier(); }

void vfiokit_probe_dma_read_barrier() { vfiokit::iommu::dma_read_barrier(); }

// docs/dma.md's doorbell: the descriptor is made visible to the device, then the MMIO write.
void vfiokit_probe_ring_doorbell(const std::byte* descriptor, std::size_t size,
                                 volatile std::uint32_t* doorbell, std::uint32_t value) {
  vfiokit::iommu::sync_for_device({descriptor, size});
  vfiokit::iommu::dma_write_barrier();
  *doorbell = value;
}

// docs/dma.md's completion: the flag is seen, then what the device wrote is read.
std::uint32_t vfiokit_probe_read_completion(const volatile std::uint32_t* flag,
                                            const std::byte* data, std::size_t size) {
  while (*flag == 0) {
  }
  vfiokit::iommu::dma_read_barrier();
  vfiokit::iommu::sync_for_cpu({data, size});
  return static_cast<std::uint32_t>(data[0]);
}
}
