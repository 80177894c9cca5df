// `vfiokit selftest BDF`: exercises a device on vfio-pci end to end, stage by stage.
//   config       config space read through VFIO matches sysfs; capabilities parse
//   bar          registers read through mmap and through pread agree (edu: identification and
//                liveness; nvme: CAP and version)
//   dma          edu: a random 4 KiB pattern copied into the device and back out at an IOVA
//                the IOMMU translates; nvme: admin queue bring-up and Identify Controller, the
//                data arriving by DMA and the completion on MSI-X vector 0; others: skipped
//   irq-eventfd  every MSI-X vector (or MSI, or INTx) fired with the kernel's loopback trigger
//                arrives on its own eventfd, and only there; edu also raises a real interrupt
//   irq-kvm      the vectors wired into a fresh VM (GSI routes, KVM_IRQFD) running the
//                irq-probe payload: each fired vector reaches the guest as its own vector, once,
//                and a real device interrupt (edu, nvme) does too
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::drivers {

enum class StageStatus { passed, failed, skipped };
std::string_view to_string(StageStatus status) noexcept;

struct StageResult {
  std::string name;
  StageStatus status = StageStatus::passed;
  std::string detail;
};

struct SelftestOptions {
  std::chrono::milliseconds timeout{10000};    // per wait for the device
  std::optional<std::string> expected_serial;  // nvme: fail the dma stage on another serial
  std::vector<std::string> stages;             // empty: all of them
};

// Opens the device (it must be on vfio-pci) and runs the stages; a failing stage does not stop
// the others. Throws Error only when the device cannot be opened at all.
std::vector<StageResult> run_selftest(const HostPaths& paths, const pci::Bdf& bdf,
                                      const SelftestOptions& options);

}  // namespace vfiokit::drivers
