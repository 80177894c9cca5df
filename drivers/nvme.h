// An NVMe controller driven from user space through VFIO: admin queues in DMA memory, enable,
// Identify Controller with the completion signalled on MSI-X vector 0, and shutdown.
#pragma once

#include <chrono>
#include <cstdint>

#include "vfiokit/drivers/nvme_protocol.h"
#include "vfiokit/iommu/dma.h"
#include "vfiokit/msix/vectors.h"
#include "vfiokit/vfio/region.h"

namespace vfiokit::drivers {

class NvmeController {
 public:
  static constexpr std::uint32_t kAdminQueueEntries = 16;

  // `device`, `dma` and `vectors` (the MSI-X index) must outlive this.
  NvmeController(const vfio::VfioDevice& device, iommu::DmaSpace& dma,
                 msix::InterruptVectors& vectors);
  // Disables the controller, so it does no more DMA before the queues are unmapped.
  ~NvmeController();

  [[nodiscard]] nvme::Capabilities capabilities() const;
  [[nodiscard]] std::uint32_t version() const;
  // Resets (CC.EN 0), programs the admin queues, enables, waits for CSTS.RDY.
  void enable();
  void disable() noexcept;

  struct IdentifyResult {
    nvme::ControllerIdentity identity;
    nvme::Completion completion;
    std::uint64_t data_iova = 0;
    bool interrupt_seen = false;  // MSI-X vector 0 fired for the completion
  };
  enum class CompletionWait {
    interrupt,  // wait for MSI-X vector 0's eventfd
    poll,       // watch the completion queue's phase bit (the vector belongs to someone else,
                // such as a VM the interrupt is wired into)
  };
  // Submits Identify Controller on the admin queue and waits for its completion.
  IdentifyResult identify_controller(std::chrono::milliseconds timeout,
                                     CompletionWait wait = CompletionWait::interrupt);

 private:
  bool wait_ready(bool ready, std::chrono::milliseconds timeout) const;

  const vfio::VfioDevice* device_;
  msix::InterruptVectors* vectors_;
  vfio::Region bar0_;
  // Admin submission queue, completion queue and one data page, in one 12 KiB DMA region.
  iommu::DmaRegion queues_;
  std::uint16_t sq_tail_ = 0;
  std::uint16_t cq_head_ = 0;
  bool cq_phase_ = true;
  std::uint16_t next_command_id_ = 1;
  bool enabled_ = false;
};

}  // namespace vfiokit::drivers
