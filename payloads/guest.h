// A small VM that runs one flat payload (one of payloads.h, or a user's own): RAM, the in-kernel
// irqchip with its route table, one vCPU entered in 32-bit protected mode at the payload's load
// address, and a thread that runs it while the port-I/O mailbox (payloads/mailbox.h) turns into
// events for the host.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/mapped_memory.h"
#include "kvm/run_loop.h"
#include "kvm/system.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "msix/routing.h"

namespace vfiokit::payloads {

struct GuestOptions {
  std::size_t memory = std::size_t{16} << 20;  // guest RAM at guest-physical 0
  std::vector<std::uint8_t> parameters;        // copied to VFIOKIT_PARAMS_ADDRESS
  bool irqchip = true;                         // in-kernel PIC/IOAPIC/LAPIC (MSI needs it)
};

struct MailboxEvent {
  std::uint16_t port = 0;  // VFIOKIT_MAILBOX_*
  std::uint32_t value = 0;
  std::chrono::steady_clock::time_point time;  // when the vCPU thread saw the exit
};

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

  void start();
  void stop() noexcept;
  // The next mailbox event (LOG characters are collected into log() instead), or nullopt on
  // timeout. Throws the vCPU thread's Error if the guest died (triple fault, emulation
  // failure, an access nothing handles).
  std::optional<MailboxEvent> next_event(std::chrono::milliseconds timeout);
  // Waits for an event on `port`, keeping the others queued; nullopt on timeout.
  std::optional<MailboxEvent> wait_for(std::uint16_t port, std::chrono::milliseconds timeout);
  [[nodiscard]] std::string log() const;
  // After stop(): where the guest was, for a payload that never reported ("halted at
  // 0x100234 with interrupts enabled: waiting for an interrupt that did not come").
  [[nodiscard]] std::string describe_cpu() const;

 private:
  void on_mailbox(const kvm::IoExit& io, std::span<std::uint8_t> data);
  void run_vcpu() noexcept;

  // Destroyed bottom-up: the thread is joined in the destructor body; then the vCPU, the route
  // table and the VM close; the RAM they pointed at is unmapped last.
  MappedMemory memory_;
  kvm::Vm vm_;
  msix::RouteTable routes_;
  kvm::Vcpu vcpu_;
  kvm::RunLoop loop_;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<MailboxEvent> events_;
  std::string log_;
  std::string log_line_;
  std::exception_ptr failure_;
  bool finished_ = false;
};

}  // namespace vfiokit::payloads
