#include "vfiokit/drivers/nvme.h"

#include <linux/vfio.h>

#include <cstring>
#include <thread>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"
#include "vfiokit/iommu/dma_sync.h"

namespace vfiokit::drivers {
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kSqOffset = 0;
constexpr std::size_t kCqOffset = kPage;
constexpr std::size_t kDataOffset = 2 * kPage;

std::span<const std::byte> as_bytes(std::span<std::uint8_t> range) {
  return {reinterpret_cast<const std::byte*>(range.data()), range.size()};
}

}  // namespace

NvmeController::NvmeController(const vfio::VfioDevice& device, iommu::DmaSpace& dma,
                               msix::InterruptVectors& vectors)
    : device_(&device),
      vectors_(&vectors),
      bar0_(device, VFIO_PCI_BAR0_REGION_INDEX),
      queues_(dma.allocate(3 * kPage, iommu::DmaDirection::bidirectional,
                           {.allow_huge_pages = false})) {}

NvmeController::~NvmeController() { disable(); }

nvme::Capabilities NvmeController::capabilities() const {
  // Two 32-bit reads: 64-bit MMIO accesses are not guaranteed to reach every controller whole.
  const std::uint64_t low = bar0_.read32(nvme::kRegCap);
  const std::uint64_t high = bar0_.read32(nvme::kRegCap + 4);
  return nvme::parse_capabilities(high << 32 | low);
}

std::uint32_t NvmeController::version() const { return bar0_.read32(nvme::kRegVersion); }

bool NvmeController::wait_ready(bool ready, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::uint32_t status = bar0_.read32(nvme::kRegStatus);
    if (status & 0x2) {
      throw Error("NVMe", "controller fatal status (CSTS.CFS)")
          .with("bdf", device_->bdf().to_string());
    }
    if (((status & 0x1) != 0) == ready) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void NvmeController::enable() {
  const nvme::Capabilities caps = capabilities();
  if (caps.min_page_size > kPage || caps.max_queue_entries < kAdminQueueEntries) {
    throw Error("NVMe", "controller cannot use 4 KiB pages or 16-entry admin queues")
        .with("bdf", device_->bdf().to_string());
  }
  const auto timeout = std::chrono::milliseconds(std::max<std::uint32_t>(caps.timeout_ms, 500));
  device_->enable_bus_master();
  if (bar0_.read32(nvme::kRegConfig) & 0x1) {
    bar0_.write32(nvme::kRegConfig, 0);
    if (!wait_ready(false, timeout)) {
      throw Error("NVMe", "controller did not stop (CSTS.RDY stayed 1)")
          .with("bdf", device_->bdf().to_string());
    }
  }
  std::memset(queues_.bytes().data(), 0, queues_.size());
  sq_tail_ = 0;
  cq_head_ = 0;
  cq_phase_ = true;
  const std::uint64_t sq = queues_.iova() + kSqOffset;
  const std::uint64_t cq = queues_.iova() + kCqOffset;
  bar0_.write32(nvme::kRegAdminQueueAttributes, nvme::admin_queue_attributes(kAdminQueueEntries));
  bar0_.write32(nvme::kRegAdminSqBase, static_cast<std::uint32_t>(sq));
  bar0_.write32(nvme::kRegAdminSqBase + 4, static_cast<std::uint32_t>(sq >> 32));
  bar0_.write32(nvme::kRegAdminCqBase, static_cast<std::uint32_t>(cq));
  bar0_.write32(nvme::kRegAdminCqBase + 4, static_cast<std::uint32_t>(cq >> 32));
  iommu::sync_for_device(as_bytes(queues_.bytes()));
  iommu::dma_write_barrier();
  bar0_.write32(nvme::kRegConfig, nvme::enabled_configuration());
  if (!wait_ready(true, timeout)) {
    throw Error("NVMe", "controller did not become ready (CSTS.RDY stayed 0)")
        .with("bdf", device_->bdf().to_string());
  }
  enabled_ = true;
}

void NvmeController::disable() noexcept {
  if (!enabled_) return;
  enabled_ = false;
  try {
    bar0_.write32(nvme::kRegConfig, 0);
    if (!wait_ready(false, std::chrono::milliseconds(2000))) {
      log::warn("{}: NVMe controller did not stop", device_->bdf().to_string());
    }
  } catch (const Error& e) {
    log::warn("{}", e.what());
  }
}

NvmeController::IdentifyResult NvmeController::identify_controller(
    std::chrono::milliseconds timeout, CompletionWait wait) {
  if (!enabled_) throw Error("NVMe Identify", "the controller is not enabled");
  const std::uint32_t stride = capabilities().doorbell_stride;
  const std::uint16_t command_id = next_command_id_++;
  const std::uint64_t data_iova = queues_.iova() + kDataOffset;
  const auto command = nvme::identify_command(command_id, nvme::kCnsController, data_iova);
  auto bytes = queues_.bytes();
  std::memcpy(bytes.data() + kSqOffset + sq_tail_ * nvme::kSubmissionEntrySize, command.data(),
              command.size());
  sq_tail_ = static_cast<std::uint16_t>((sq_tail_ + 1) % kAdminQueueEntries);
  iommu::sync_for_device(as_bytes(bytes.subspan(kSqOffset, kPage)));
  iommu::dma_write_barrier();
  bar0_.write32(nvme::doorbell_offset(0, false, stride), sq_tail_);

  IdentifyResult result;
  result.data_iova = data_iova;
  const auto entry =
      bytes.subspan(kCqOffset + cq_head_ * nvme::kCompletionEntrySize, nvme::kCompletionEntrySize);
  if (wait == CompletionWait::interrupt) {
    result.interrupt_seen = vectors_->wait_for(0, timeout);
  } else {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (nvme::parse_completion(entry).phase != cq_phase_ &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      iommu::sync_for_cpu(as_bytes(bytes.subspan(kCqOffset, kPage)));
    }
  }
  iommu::dma_read_barrier();
  iommu::sync_for_cpu(as_bytes(bytes.subspan(kCqOffset, 2 * kPage)));
  result.completion = nvme::parse_completion(entry);
  if (result.completion.phase != cq_phase_) {
    throw Error("NVMe Identify", result.interrupt_seen
                                     ? "MSI-X vector 0 fired but no completion was posted"
                                     : "no completion within the timeout")
        .with("bdf", device_->bdf().to_string())
        .with("timeout_ms", std::to_string(timeout.count()));
  }
  cq_head_ = static_cast<std::uint16_t>((cq_head_ + 1) % kAdminQueueEntries);
  if (cq_head_ == 0) cq_phase_ = !cq_phase_;
  bar0_.write32(nvme::doorbell_offset(0, true, stride), cq_head_);
  if (result.completion.command_id != command_id || result.completion.status != 0) {
    throw Error("NVMe Identify", "completion for command " +
                                     std::to_string(result.completion.command_id) +
                                     " with status " + hex(result.completion.status))
        .with("bdf", device_->bdf().to_string());
  }
  result.identity = nvme::parse_identify_controller(bytes.subspan(kDataOffset, kPage));
  return result;
}

}  // namespace vfiokit::drivers
