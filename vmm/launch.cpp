#include "vfiokit/vmm/launch.h"

#include <atomic>
#include <cstdio>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"
#include "vfiokit/iommu/backend.h"
#include "vfiokit/iommu/dirty_pages.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/msix/host_counts.h"
#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/vmm/passthrough.h"
#include "vfiokit/vmm/pci_bus.h"

namespace vfiokit::vmm {
namespace {

double ms_between(std::chrono::steady_clock::time_point from,
                  std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// steady_clock is CLOCK_MONOTONIC on Linux.
std::int64_t monotonic_ns(std::chrono::steady_clock::time_point at) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
}

// "00:01.0 is 8086:10d3, " from a DETAIL of vendor | device << 16.
std::string found_instead(std::optional<std::uint32_t> ids) {
  if (!ids) return "00:01.0 is ";
  char text[16];
  std::snprintf(text, sizeof text, "%04x:%04x", *ids & 0xffffu, *ids >> 16);
  return "00:01.0 is " + std::string(text) + ", ";
}

// Trapped BAR accesses, counted on the vCPU thread and read on the caller's.
struct TrapCounters {
  std::array<std::atomic<std::uint64_t>, kBarCount> reads{};
  std::array<std::atomic<std::uint64_t>, kBarCount> writes{};

  void count(const std::optional<BarHit>& hit, bool write) noexcept {
    if (!hit || hit->index >= kBarCount) return;
    (write ? writes : reads)[hit->index].fetch_add(1, std::memory_order_relaxed);
  }
  [[nodiscard]] std::array<BarTraps, kBarCount> snapshot() const noexcept {
    std::array<BarTraps, kBarCount> out{};
    for (std::size_t i = 0; i < kBarCount; ++i) {
      out[i] = {reads[i].load(std::memory_order_relaxed),
                writes[i].load(std::memory_order_relaxed)};
    }
    return out;
  }
};

}  // namespace

std::string describe_done_code(std::uint32_t code, std::optional<std::uint32_t> detail) {
  static constexpr const char* kExceptions[] = {"divide error",
                                                "debug",
                                                "NMI",
                                                "breakpoint",
                                                "overflow",
                                                "bound range",
                                                "invalid opcode",
                                                "device not available",
                                                "double fault",
                                                "coprocessor segment overrun",
                                                "invalid TSS",
                                                "segment not present",
                                                "stack fault",
                                                "general protection",
                                                "page fault",
                                                "reserved",
                                                "x87 floating point",
                                                "alignment check",
                                                "machine check",
                                                "SIMD floating point"};
  if ((code & 0xff00u) == VFIOKIT_DONE_EXCEPTION) {
    const std::uint32_t vector = code & 0xffu;
    return "exception " + hex(vector) +
           (vector < std::size(kExceptions) ? " (" + std::string(kExceptions[vector]) + ")" : "");
  }
  switch (code) {
    case VFIOKIT_DONE_PASSED:
      return "passed";
    case VFIOKIT_DONE_BAD_PARAMETERS:
      return "bad parameters";
    case VFIOKIT_DONE_NO_DEVICE:
      return "the device is not on the guest's PCI bus";
    case VFIOKIT_DONE_NO_CAPABILITY:
      return "the device lacks the MSI or MSI-X capability";
    case VFIOKIT_DONE_TIMEOUT:
      return "the device did not answer in time";
    case VFIOKIT_DONE_MISMATCH:
      return "data came back different";
    case VFIOKIT_DONE_DEVICE_ERROR:
      return "the device reported an error";
    case VFIOKIT_DONE_WRONG_SERIAL:
      return "Identify reported another serial";
    case VFIOKIT_DONE_NOT_EDU:
      return found_instead(detail) + "not the edu device (1234:11e8) this payload drives";
    case VFIOKIT_DONE_NO_INTX:
      return "the device has no INTx pin the guest can use";
    case VFIOKIT_DONE_NOT_NVME:
      return found_instead(detail) + "not the NVMe controller (class 01:08:02) this payload drives";
    default:
      return "failure code " + hex(code);
  }
}

LaunchResult launch_payload(const HostPaths& paths, vfio::OpenedDevice& opened,
                            std::span<const std::uint8_t> image, const LaunchOptions& options) {
  LaunchResult result;
  const kvm::KvmSystem kvm = kvm::KvmSystem::open(paths);
  payloads::GuestOptions guest_options;
  guest_options.memory = options.memory;
  guest_options.parameters = options.parameters;
  guest_options.dirty_tracking = options.dirty_log;
  // Destroyed bottom-up after the vCPU has stopped: the device model (interrupts unwired, BAR
  // slots removed), then the DMA mapping of guest RAM, then the guest and its RAM.
  payloads::PayloadGuest guest(kvm, image, guest_options);
  log::debug("VM with {} of RAM, irqchip and a vCPU ready", human_size(guest.memory().size()));
  const iommu::DmaMapping ram = opened.backend->map(guest.memory().data(), 0, guest.memory().size(),
                                                    iommu::DmaDirection::bidirectional);
  log::debug("guest RAM DMA-mapped at IOVA 0 (pinned)");
  // The device's dirty page log, declared after `ram`: tracking stops before RAM is unmapped.
  std::optional<iommu::DirtyPageTracking> device_dirty;
  if (options.dirty_log) {
    kvm::DirtyTracker& tracker = *guest.dirty_tracker();
    if (options.require_dirty_ring && tracker.mechanism() != kvm::DirtyMechanism::ring) {
      throw Error("launch",
                  "this kernel's KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING, "
                  "Linux 5.11 and later on x86)")
          .hint("leave out --dirty-mechanism ring: the dirty bitmap works on every kernel");
    }
    result.dirty_log.emplace();
    result.dirty_log->vcpu_mechanism = tracker.description();
    try {
      device_dirty = iommu::DirtyPageTracking::start(*opened.backend);
      result.dirty_log->device_mechanism =
          "VFIO type1 dirty page log (every page pinned for DMA: all of guest RAM)";
      result.dirty_log->device_pages.emplace();
    } catch (const Error& e) {
      result.dirty_log->device_missing = e.what();
    }
    log::debug(
        "dirty log: {}; device: {}", result.dirty_log->vcpu_mechanism,
        device_dirty ? result.dirty_log->device_mechanism : result.dirty_log->device_missing);
  }
  const BarWindows windows;
  PassthroughDevice device(
      opened.device, guest.vm(), guest.routes(), windows,
      {.slot = VFIOKIT_GUEST_DEVICE_DEVFN >> 3, .intx_only = options.intx_only});
  PciBus bus;
  bus.attach(VFIOKIT_GUEST_DEVICE_DEVFN >> 3, VFIOKIT_GUEST_DEVICE_DEVFN & 7, device);
  result.layout = device.describe();
  log::debug("device model ready: {} BAR memory slot(s)", device.memory_slots());
  if (const auto gsi = device.interrupts().intx_gsi()) log::debug("INTx on IOAPIC pin {}", *gsi);

  kvm::RunLoop& loop = guest.run_loop();
  loop.on_io(kConfigAddressPort, kConfigDataPort + 3,
             [&bus](const kvm::IoExit& io, std::span<std::uint8_t> data) {
               for (std::uint32_t i = 0; i < io.count; ++i) {
                 bus.io(io.port, io.out, data.subspan(std::size_t{i} * io.size, io.size));
               }
             });
  TrapCounters traps;
  auto trapped_io = [&device, &traps](const kvm::IoExit& io, std::span<std::uint8_t> data) {
    if (!device.io(io, data)) {
      throw Error("guest I/O", "port " + hex(io.port) + " is in the I/O window but in no BAR");
    }
    traps.count(device.bars().io_at(io.port), io.out);
  };
  auto trapped_mmio = [&device, &traps](const kvm::MmioExit& mmio, std::span<std::uint8_t> data) {
    if (!device.mmio(mmio, data)) {
      throw Error("guest MMIO", hex(mmio.address) + " is in the MMIO window but in no BAR");
    }
    traps.count(device.bars().memory_at(mmio.address), mmio.write);
  };
  loop.on_io(static_cast<std::uint16_t>(windows.io_start),
             static_cast<std::uint16_t>(windows.io_end), trapped_io);
  loop.on_mmio(windows.mmio32_start, windows.mmio32_end, trapped_mmio);
  loop.on_mmio(windows.mmio64_start, windows.mmio64_end, trapped_mmio);

  // What the device raised on the host and what KVM did for the vCPU, read at every mailbox
  // write: a guest that then waits in vain is diagnosed from what changed since the last one.
  const pci::Bdf bdf = opened.device.bdf();
  auto interrupt_counts = [&paths, &bdf, &guest] {
    InterruptCounts counts;
    try {
      counts.host = msix::vfio_interrupt_counts(paths, bdf);
    } catch (const Error& e) {
      log::debug("host interrupt counts: {}", e.what());
    }
    const auto stats = guest.vcpu_statistics();
    if (const auto it = stats.find("irq_injections"); it != stats.end())
      counts.injections = it->second;
    if (const auto it = stats.find("halt_wakeup"); it != stats.end())
      counts.halt_wakeups = it->second;
    return counts;
  };

  std::chrono::steady_clock::time_point started;
  auto gather_statistics = [&](bool running) {
    GuestStatistics statistics;
    if (auto vm = guest.vm_statistic_samples()) statistics.vm = std::move(*vm);
    if (auto vcpus = guest.vcpu_statistic_samples()) statistics.vcpus = std::move(*vcpus);
    if (statistics.vm.empty() && statistics.vcpus.empty()) {
      statistics.kvm_missing =
          "this kernel gives no binary statistics (KVM_GET_STATS_FD, Linux 5.14 and later)";
    }
    try {
      statistics.device_interrupts = msix::vfio_interrupt_counts(paths, bdf);
    } catch (const Error& e) {
      log::debug("host interrupt counts: {}", e.what());
    }
    statistics.trapped = traps.snapshot();
    statistics.dma_mapped_bytes = guest.memory().size();
    statistics.first_instruction_ms = result.first_instruction_ms;
    statistics.elapsed_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    statistics.running = running;
    return statistics;
  };

  // The pages written since the last harvest, added to the run's totals.
  auto harvest_dirty = [&]() -> DirtyInterval {
    DirtyLogResult& log = *result.dirty_log;
    DirtyInterval interval;
    const std::vector<std::uint64_t> vcpu = guest.dirty_tracker()->harvest();
    interval.vcpu_pages = vcpu.size();
    merge_pages(log.vcpu_pages, vcpu);
    if (device_dirty) {
      // The device's log failing is no reason to end the guest: it is left out from here on,
      // and the result says why.
      try {
        const iommu::DirtyBitmap bitmap = device_dirty->get(0, guest.memory().size());
        const std::vector<std::uint64_t> written = guest_pages_of(bitmap.iovas(), bitmap.page_size);
        interval.device_pages = written.size();
        merge_pages(*log.device_pages, written);
      } catch (const Error& e) {
        log::warn("the device's dirty page log could not be read: {}", e.what());
        log.device_missing = std::string("reading it failed: ") + e.what();
        log.device_pages.reset();
        device_dirty.reset();  // stops tracking
      }
    }
    interval.elapsed_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log.intervals.push_back(interval);
    log.counters = guest.dirty_tracker()->counters();
    return interval;
  };

  struct StopGuest {
    payloads::PayloadGuest& guest;
    ~StopGuest() { guest.stop(); }
  } stop{guest};
  InterruptCounts at_last_event = interrupt_counts();
  std::uint64_t log_lines = 0;
  started = std::chrono::steady_clock::now();
  guest.start();
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  auto next_report = started + options.report_interval;
  try {
    for (;;) {
      if ((options.on_report || options.dirty_log) &&
          std::chrono::steady_clock::now() >= next_report) {
        std::optional<DirtyInterval> dirty;
        if (options.dirty_log) {
          try {
            dirty = harvest_dirty();
          } catch (const Error& e) {
            result.failure = std::string("the dirty log could not be read: ") + e.what();
            break;
          }
        }
        if (options.on_report) {
          const GuestStatistics statistics = gather_statistics(true);
          options.on_report(LaunchReport{false, statistics, dirty ? &*dirty : nullptr});
        }
        next_report += options.report_interval;
        // A slow report (or a stalled host) does not make the next ones come in a burst.
        next_report =
            std::max(next_report, std::chrono::steady_clock::now() + options.report_interval);
      }
      if (options.cancelled && options.cancelled()) {
        result.failure = "interrupted before the payload reported a result";
        break;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        const InterruptCounts at_timeout = interrupt_counts();
        guest.stop();
        result.hang = diagnose_hang(at_last_event, at_timeout, guest.vcpu_state());
        const auto ms = options.timeout.count();
        result.failure =
            "the payload reported no result within " +
            (ms % 1000 ? std::to_string(ms) + " ms" : std::to_string(ms / 1000) + " s") + "; " +
            result.hang->describe();
        break;
      }
      // Short waits, so a cancel request is seen promptly, and none past the next report.
      auto wait = std::min(left, std::chrono::milliseconds(100));
      if (options.on_report || options.dirty_log) {
        const auto to_report = std::chrono::ceil<std::chrono::milliseconds>(
            next_report - std::chrono::steady_clock::now());
        wait = std::clamp(to_report, std::chrono::milliseconds(1), wait);
      }
      const auto event = guest.next_event(wait);
      // A new log line is progress too: the wait being diagnosed starts after the last sign of
      // it (to within the 100 ms of the wait above).
      const std::uint64_t lines = guest.log_lines();
      if (event || lines != log_lines) at_last_event = interrupt_counts();
      log_lines = lines;
      if (!event) continue;
      switch (event->port) {
        case VFIOKIT_MAILBOX_STARTED:
          if (!result.first_instruction_ms) {
            result.first_instruction_ms = ms_between(options.start, event->time);
            result.first_instruction_monotonic_ns = monotonic_ns(event->time);
          }
          break;
        case VFIOKIT_MAILBOX_VALUE:
          if (result.values.size() < kMaxValues) {
            result.values.push_back(event->value);
          } else {
            ++result.values_dropped;
          }
          [[fallthrough]];
        default:
          if (!result.first_mailbox_ms) {
            result.first_mailbox_ms = ms_between(options.start, event->time);
            result.first_mailbox_monotonic_ns = monotonic_ns(event->time);
          }
          break;
      }
      if (event->port == VFIOKIT_MAILBOX_DETAIL) result.done_detail = event->value;
      if (event->port == VFIOKIT_MAILBOX_DONE) {
        result.done_code = event->value;
        result.passed = event->value == VFIOKIT_DONE_PASSED;
        if (!result.passed) {
          result.failure =
              "the payload failed: " + describe_done_code(event->value, result.done_detail);
        }
        break;
      }
    }
  } catch (const Error& e) {
    // The vCPU died: a triple fault, an access nothing handles, an emulation failure.
    result.failure = std::string("the guest stopped: ") + e.what() +
                     (e.hint().empty() ? "" : " (" + e.hint() + ")");
  }
  guest.stop();
  // What the guest wrote after the last report: its vCPU has stopped, so this is all of it.
  std::optional<DirtyInterval> last_dirty;
  if (options.dirty_log) {
    try {
      last_dirty = harvest_dirty();
    } catch (const Error& e) {
      if (result.failure.empty()) {
        result.failure = std::string("the dirty log could not be read: ") + e.what();
        result.passed = false;
      }
    }
  }
  result.statistics = gather_statistics(false);
  if (options.on_report) {
    options.on_report(LaunchReport{true, result.statistics, last_dirty ? &*last_dirty : nullptr});
  }
  result.log = guest.log();
  result.log_bytes_dropped = guest.log_bytes_dropped();
  result.events_dropped = guest.events_dropped();
  return result;
}

}  // namespace vfiokit::vmm
