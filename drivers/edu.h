// QEMU's educational device (1234:11e8) from user space: identification and liveness
// registers, its DMA engine (a 4 KiB buffer at device address 0x40000, 28-bit DMA addresses by
// default), and interrupts raised and acknowledged by register writes.
#pragma once

#include <chrono>
#include <cstdint>

#include "vfiokit/vfio/region.h"

namespace vfiokit::drivers {

class Edu {
 public:
  static constexpr std::uint16_t kVendor = 0x1234;
  static constexpr std::uint16_t kDevice = 0x11e8;
  static constexpr std::uint32_t kIdentification = 0x010000ed;  // major 1, minor 0
  static constexpr std::uint64_t kDmaMask = (std::uint64_t{1} << 28) - 1;
  static constexpr std::uint64_t kBufferAddress = 0x40000;  // in the device's DMA space
  static constexpr std::uint32_t kBufferSize = 4096;
  static constexpr std::uint32_t kDmaInterrupt = 0x100;  // status bit of a finished DMA

  // `device` must outlive this; BAR0 is mapped where VFIO allows.
  explicit Edu(const vfio::VfioDevice& device);

  [[nodiscard]] std::uint32_t identification() const;
  // Writes `probe`; the device answers its bitwise inverse.
  [[nodiscard]] bool liveness(std::uint32_t probe) const;

  // The most a single transfer may move. QEMU 7.2's edu checks the device-side range with an
  // off-by-one: a transfer that ends at the buffer's last byte is "out of bounds" and QEMU
  // aborts (hw_error). So transfers end before it, and 4 KiB goes in two halves.
  static constexpr std::uint32_t kMaxTransfer = kBufferSize / 2;

  enum class Direction { to_device, from_device };
  // Starts one DMA between `iova` and the device buffer at `buffer_offset`; with `interrupt`,
  // the device raises kDmaInterrupt when it is done. Throws Error before touching the device
  // if the IOVA range is beyond the DMA mask or the buffer range reaches the buffer's end.
  void start_dma(Direction direction, std::uint64_t iova, std::uint32_t buffer_offset,
                 std::uint32_t count, bool interrupt) const;
  [[nodiscard]] bool dma_busy() const;
  // Polls until the DMA engine is idle; false on timeout.
  bool wait_dma_idle(std::chrono::milliseconds timeout) const;

  void raise_interrupt(std::uint32_t status_bits) const;
  void acknowledge_interrupt(std::uint32_t status_bits) const;
  [[nodiscard]] std::uint32_t interrupt_status() const;

  [[nodiscard]] const vfio::Region& bar0() const noexcept { return bar0_; }

 private:
  vfio::Region bar0_;
};

}  // namespace vfiokit::drivers
