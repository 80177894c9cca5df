// `vfiokit launch BDF --payload NAME`: a guest that owns the device. The built-in VMM runs a
// payload with the device as PCI function 00:01.0, its RAM DMA-mapped at IOVA = guest-physical
// address (so the guest programs the device with its own addresses), and reports what the
// payload said through the mailbox.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/vfio/open.h"
#include "vfiokit/vmm/dirty_log.h"
#include "vfiokit/vmm/guest_statistics.h"
#include "vfiokit/vmm/hang_report.h"

namespace vfiokit::vmm {

// What the guest has done so far, handed to LaunchOptions::on_report while it runs and once more
// after it stopped (`final`).
struct LaunchReport {
  bool final = false;
  const GuestStatistics& statistics;
  // With LaunchOptions::dirty_log: the pages written since the previous report.
  const DirtyInterval* dirty = nullptr;
};

struct LaunchOptions {
  std::size_t memory = std::size_t{16} << 20;  // guest RAM
  std::chrono::milliseconds timeout{30000};    // for the payload's result
  std::vector<std::uint8_t> parameters;        // at VFIOKIT_PARAMS_ADDRESS
  // The device's MSI and MSI-X hidden, so the guest must use its INTx pin (--interrupts intx).
  bool intx_only = false;
  // Timings are measured from here (the CLI passes the moment its main() began).
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  // Asked between waits (at least every 100 ms): true ends the run early (Ctrl-C), the guest
  // stops and the result says so.
  std::function<bool()> cancelled;
  // Called on the caller's thread every `report_interval` while the guest runs (to within the
  // 100 ms of a wait), and once after it stopped. Statistics are gathered only for it and for
  // the result, so a launch without it reads nothing more while the guest runs.
  std::chrono::milliseconds report_interval{1000};
  std::function<void(const LaunchReport&)> on_report;
  // Log the pages the vCPU writes (KVM's dirty ring or bitmap) and those VFIO reports for the
  // device, every report_interval and at the end (LaunchResult::dirty_log).
  std::optional<kvm::DirtyTrackerOptions> dirty_log;
  // With dirty_log: fail, rather than fall back to the bitmap, where KVM has no dirty ring.
  bool require_dirty_ring = false;
};

// A guest decides how much it reports; the host keeps this many VALUE reports.
inline constexpr std::size_t kMaxValues = 1024;

struct LaunchResult {
  bool passed = false;
  std::optional<std::uint32_t> done_code;    // what the payload reported, if it did
  std::optional<std::uint32_t> done_detail;  // VFIOKIT_MAILBOX_DETAIL before it
  std::string failure;                       // why it did not pass; empty when it did
  // For a payload that never reported: where its interrupt stopped (vmm/hang_report.h).
  std::optional<HangReport> hang;
  std::string log;                    // the payload's log lines (payloads::GuestLog)
  std::vector<std::uint32_t> values;  // VFIOKIT_MAILBOX_VALUE reports, the first kMaxValues
  // What a guest wrote past the limits: log bytes past 64 KiB (the log ends with a line saying
  // so), mailbox events the host could not keep up with, VALUE reports past kMaxValues.
  std::uint64_t log_bytes_dropped = 0;
  std::uint64_t events_dropped = 0;
  std::uint64_t values_dropped = 0;
  std::string guest_bdf = "0000:00:01.0";
  std::vector<std::string> layout;             // the device's BARs in the guest
  std::optional<double> first_instruction_ms;  // since LaunchOptions::start
  std::optional<double> first_mailbox_ms;
  // The same moments on CLOCK_MONOTONIC, comparable across processes (benchmarks).
  std::optional<std::int64_t> first_instruction_monotonic_ns;
  std::optional<std::int64_t> first_mailbox_monotonic_ns;
  // As the guest stopped (vmm/guest_statistics.h).
  GuestStatistics statistics;
  std::optional<DirtyLogResult> dirty_log;  // with LaunchOptions::dirty_log
};

// Runs `image` with `opened`'s device passed through. Throws Error when the VM cannot be set
// up; a payload that faults, reports a failure, or never reports within the timeout is a
// LaunchResult that did not pass, with the reason in `failure`.
LaunchResult launch_payload(const HostPaths& paths, vfio::OpenedDevice& opened,
                            std::span<const std::uint8_t> image, const LaunchOptions& options);

// "passed", "exception 0x0 (divide error)", "the device is not on the guest's PCI bus",
// "00:01.0 is 8086:10d3, not the edu device (1234:11e8) this payload drives" (with the
// payload's DETAIL), ...
std::string describe_done_code(std::uint32_t code,
                               std::optional<std::uint32_t> detail = std::nullopt);

}  // namespace vfiokit::vmm
