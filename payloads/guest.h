// A small VM that runs one flat payload (one of payloads.h, or a user's own): RAM, the in-kernel
// irqchip with its route table, one vCPU entered at the payload's load address (x86: in 32-bit
// protected mode; arm64, irq-probe's arm64 build only: in EL1 with the MMU off), and a thread
// that runs it while the mailbox (payloads/mailbox.h: port I/O, or MMIO on arm64) turns into
// events for the host.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/kvm/dirty_tracker.h"
#include "vfiokit/kvm/run_loop.h"
#include "vfiokit/kvm/stats.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/kvm/vm.h"
#include "vfiokit/msix/routing.h"

namespace vfiokit::payloads {

struct GuestOptions {
  std::size_t memory = std::size_t{16} << 20;  // guest RAM at guest-physical 0
  std::vector<std::uint8_t> parameters;        // copied to VFIOKIT_PARAMS_ADDRESS
  bool irqchip = true;  // in-kernel PIC/IOAPIC/LAPIC, arm64: vGICv3 + ITS (MSI needs it)
  // Log the pages the vCPU writes in guest RAM (kvm/dirty_tracker.h): the ring or the bitmap.
  std::optional<kvm::DirtyTrackerOptions> dirty_tracking;
};

struct MailboxEvent {
  std::uint16_t port = 0;  // VFIOKIT_MAILBOX_*
  std::uint32_t value = 0;
  std::chrono::steady_clock::time_point time;  // when the vCPU thread saw the exit
};

// What a payload writes to the log port, kept for the operator. A guest decides how much it
// writes, so at most `limit` bytes are kept and the rest counted; and what it writes, so
// bytes other than printable ASCII, tab and newline are kept as \xNN (and a backslash as \\):
// no escape sequence reaches the operator's terminal. Pure.
class GuestLog {
 public:
  static constexpr std::size_t kDefaultLimit = std::size_t{64} << 10;
  explicit GuestLog(std::size_t limit = kDefaultLimit) : limit_(limit) {}

  // One byte from the guest; returns the line it ends, if it ends one (escaped, no newline).
  std::optional<std::string> add(std::uint8_t byte);
  // What was kept, then, if anything was dropped, a line saying how much.
  [[nodiscard]] std::string text() const;
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  std::size_t limit_;
  std::string kept_;
  std::size_t line_start_ = 0;
  std::uint64_t dropped_ = 0;
};

// Mailbox events waiting for the host, at most `limit`: a guest writing faster than the host
// reads loses the newest ones, counted, except its first DONE (the run's verdict). Pure.
class MailboxQueue {
 public:
  static constexpr std::size_t kDefaultLimit = 4096;
  explicit MailboxQueue(std::size_t limit = kDefaultLimit) : limit_(limit) {}

  void push(const MailboxEvent& event);
  std::optional<MailboxEvent> pop();
  // The first event on `port`, taken out of turn; the others stay queued.
  std::optional<MailboxEvent> take(std::uint16_t port);
  [[nodiscard]] bool empty() const noexcept { return events_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return events_.size(); }
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  std::size_t limit_;
  std::deque<MailboxEvent> events_;
  std::uint64_t dropped_ = 0;
  bool done_queued_ = false;
};

// irq-probe's parameters for a device whose vectors 0..count-1 must arrive as guest vectors
// first_vector + n, each once; and the MSI message vfiokit routes for device vector n. x86: a
// fixed-delivery message to APIC 0 naming the vector. arm64: event n of the device at
// VFIOKIT_GUEST_DEVICE_DEVFN through the ITS (kvm::its_msi), which irq-probe maps to LPI
// 8192 + first_vector + n. Throws Error when the vectors would pass 0xff.
GuestOptions irq_probe_options(std::uint32_t count, std::uint8_t first_vector = 0x30);
msix::MsiMessage irq_probe_message(std::uint32_t n, std::uint8_t first_vector = 0x30);

class PayloadGuest {
 public:
  PayloadGuest(const kvm::KvmSystem& system, std::span<const std::uint8_t> image,
               const GuestOptions& options = {});
  // Stops the vCPU and joins its thread before anything it uses goes away.
  ~PayloadGuest();
  PayloadGuest(const PayloadGuest&) = delete;
  PayloadGuest& operator=(const PayloadGuest&) = delete;

  [[nodiscard]] kvm::Vm& vm() noexcept { return vm_; }
  [[nodiscard]] msix::RouteTable& routes() noexcept { return routes_; }
  [[nodiscard]] std::span<std::uint8_t> memory() const noexcept { return memory_.bytes(); }
  // Register extra I/O or MMIO handlers (devices of a VMM) before start().
  [[nodiscard]] kvm::RunLoop& run_loop() noexcept { return loop_; }
  // With GuestOptions::dirty_tracking: the pages the vCPU wrote (guest RAM's slot is tracked
  // from before the first instruction). Null without it.
  [[nodiscard]] kvm::DirtyTracker* dirty_tracker() noexcept { return dirty_ ? &*dirty_ : nullptr; }

  void start();
  void stop() noexcept;
  // The next mailbox event (LOG characters are collected into log() instead), or nullopt on
  // timeout. Throws the vCPU thread's Error if the guest died (triple fault, emulation
  // failure, an access nothing handles).
  std::optional<MailboxEvent> next_event(std::chrono::milliseconds timeout);
  // Waits for an event on `port`, keeping the others queued; nullopt on timeout.
  std::optional<MailboxEvent> wait_for(std::uint16_t port, std::chrono::milliseconds timeout);
  // The payload's log (GuestLog::text()), and what was dropped of it and of the events.
  [[nodiscard]] std::string log() const;
  [[nodiscard]] std::uint64_t log_bytes_dropped() const;
  // How many log lines the guest has ended so far: a sign of progress between mailbox events.
  [[nodiscard]] std::uint64_t log_lines() const;
  [[nodiscard]] std::uint64_t events_dropped() const;
  // Interrupts the x86 runtime ignored because they came while interrupts were off: an emulator
  // delivering an injected interrupt twice (mailbox.h, VFIOKIT_MAILBOX_REPEATED). 0 on hardware.
  [[nodiscard]] std::uint64_t repeated_deliveries() const;
  // Where the vCPU is (after stop(), or while it waits in the kernel), and KVM's statistics
  // for it (empty where the kernel has no binary statistics): for a payload that never reports.
  [[nodiscard]] kvm::VcpuState vcpu_state() const noexcept { return vcpu_.state(); }
  [[nodiscard]] std::map<std::string, std::uint64_t> vcpu_statistics() const;
  // KVM's statistics with their descriptors (types, units), of the VM and of each vCPU; nullopt
  // where the kernel has no binary statistics (before Linux 5.14) or a read failed.
  [[nodiscard]] std::optional<std::vector<kvm::StatSample>> vm_statistic_samples() const;
  [[nodiscard]] std::optional<std::vector<std::vector<kvm::StatSample>>> vcpu_statistic_samples()
      const;

 private:
  void on_mailbox(const kvm::IoExit& io, std::span<std::uint8_t> data);
  void run_vcpu() noexcept;

  // Destroyed bottom-up: the thread is joined in the destructor body; then the vCPU, the route
  // table and the VM close; the RAM they pointed at is unmapped last.
  MappedMemory memory_;
  kvm::Vm vm_;
  // Made with the VM, before the vCPU (KVM sizes a vCPU's dirty ring when it creates it); its
  // rings are unmapped after the vCPU fd closed, which the mappings outlive safely.
  std::optional<kvm::DirtyTracker> dirty_;
  msix::RouteTable routes_;
  kvm::Vcpu vcpu_;
  std::optional<kvm::StatsReader> vcpu_stats_;  // its own fd: closes before the vCPU's
  std::optional<kvm::StatsReader> vm_stats_;    // and this one before the VM's
  kvm::RunLoop loop_;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  MailboxQueue events_;
  GuestLog log_;
  std::uint64_t log_lines_ = 0;
  std::uint64_t repeated_deliveries_ = 0;
  std::exception_ptr failure_;
  bool finished_ = false;
};

}  // namespace vfiokit::payloads
