#include "vfiokit/drivers/edu.h"

#include <linux/vfio.h>

#include <thread>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/iommu/dma_sync.h"

namespace vfiokit::drivers {
namespace {

// Register offsets (QEMU docs/specs/edu.rst).
constexpr std::uint64_t kRegIdentification = 0x00;
constexpr std::uint64_t kRegLiveness = 0x04;
constexpr std::uint64_t kRegInterruptStatus = 0x24;
constexpr std::uint64_t kRegInterruptRaise = 0x60;
constexpr std::uint64_t kRegInterruptAck = 0x64;
constexpr std::uint64_t kRegDmaSource = 0x80;
constexpr std::uint64_t kRegDmaDestination = 0x88;
constexpr std::uint64_t kRegDmaCount = 0x90;
constexpr std::uint64_t kRegDmaCommand = 0x98;
constexpr std::uint64_t kDmaStart = 0x1;
constexpr std::uint64_t kDmaFromDevice = 0x2;
constexpr std::uint64_t kDmaRaiseInterrupt = 0x4;

}  // namespace

Edu::Edu(const vfio::VfioDevice& device) : bar0_(device, VFIO_PCI_BAR0_REGION_INDEX) {}

std::uint32_t Edu::identification() const { return bar0_.read32(kRegIdentification); }

bool Edu::liveness(std::uint32_t probe) const {
  bar0_.write32(kRegLiveness, probe);
  return bar0_.read32(kRegLiveness) == ~probe;
}

void Edu::start_dma(Direction direction, std::uint64_t iova, std::uint32_t buffer_offset,
                    std::uint32_t count, bool interrupt) const {
  if (count == 0 || iova > kDmaMask || count - 1 > kDmaMask - iova) {
    throw Error("edu DMA", "IOVA range is beyond the device's 28-bit DMA mask")
        .with("iova", hex(iova))
        .with("size", std::to_string(count));
  }
  if (buffer_offset >= kBufferSize || count >= kBufferSize - buffer_offset) {
    throw Error("edu DMA", "the transfer must end before the last byte of edu's 4 KiB buffer")
        .with("buffer_offset", hex(buffer_offset))
        .with("size", std::to_string(count));
  }
  const bool to_device = direction == Direction::to_device;
  const std::uint64_t device_address = kBufferAddress + buffer_offset;
  bar0_.write64(kRegDmaSource, to_device ? iova : device_address);
  bar0_.write64(kRegDmaDestination, to_device ? device_address : iova);
  bar0_.write64(kRegDmaCount, count);
  // The command write is the doorbell: everything the device will read must be visible first.
  iommu::dma_write_barrier();
  bar0_.write64(kRegDmaCommand, kDmaStart | (to_device ? 0 : kDmaFromDevice) |
                                    (interrupt ? kDmaRaiseInterrupt : 0));
}

bool Edu::dma_busy() const { return (bar0_.read64(kRegDmaCommand) & kDmaStart) != 0; }

bool Edu::wait_dma_idle(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (dma_busy()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // The device said it is done: nothing may be read from the buffer before that was seen.
  iommu::dma_read_barrier();
  return true;
}

void Edu::raise_interrupt(std::uint32_t status_bits) const {
  bar0_.write32(kRegInterruptRaise, status_bits);
}

void Edu::acknowledge_interrupt(std::uint32_t status_bits) const {
  bar0_.write32(kRegInterruptAck, status_bits);
}

std::uint32_t Edu::interrupt_status() const { return bar0_.read32(kRegInterruptStatus); }

}  // namespace vfiokit::drivers
