#include "vfiokit/kvm/dirty_ring.h"

#include <sys/mman.h>
#include <unistd.h>

#include "vfiokit/base/error.h"
#include "vfiokit/kvm/uapi.h"

namespace vfiokit::kvm {

DirtyRing DirtyRing::map(int vcpu_fd, std::uint32_t vcpu_id, std::uint32_t entries,
                         RingOrdering ordering) {
  const std::size_t bytes = std::size_t{entries} * sizeof(kvm_dirty_gfn);
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  // Kernel contract: the vCPU fd backs the ring at KVM_DIRTY_LOG_PAGE_OFFSET pages, `bytes`
  // long, shared and writable (userspace writes the RESET flag).
  void* ring = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd,
                      static_cast<off_t>(uapi::kDirtyRingPageOffset * page));
  if (ring == MAP_FAILED) {
    throw Error::from_last_errno("mmap the KVM dirty ring")
        .with("vcpu", std::to_string(vcpu_id))
        .with("entries", std::to_string(entries))
        .hint("the ring must be enabled on the VM before this vCPU was created");
  }
  return DirtyRing(MappedMemory(ring, bytes), vcpu_id, ordering);
}

std::string ring_capability_name(RingOrdering ordering) {
  return ordering == RingOrdering::acquire_release ? "KVM_CAP_DIRTY_LOG_RING_ACQ_REL"
                                                   : "KVM_CAP_DIRTY_LOG_RING";
}

}  // namespace vfiokit::kvm
