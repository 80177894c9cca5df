// A vCPU: its fd, the shared kvm_run page, registers, and KVM_RUN with every exit classified
// the way the kernel means it.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/error.h"
#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/base/unique_fd.h"

namespace vfiokit::kvm {

enum class ExitKind {
  io,              // port I/O: hand to a handler
  mmio,            // memory-mapped I/O outside any memory slot: hand to a handler
  hlt,             // HLT without an in-kernel irqchip
  shutdown,        // triple fault or a shutdown request: the guest is dead
  fail_entry,      // the hardware refused to enter the guest (bad state)
  internal_error,  // KVM could not handle something (emulation failure, ...)
  system_event,    // reset, shutdown or crash requested by the guest (PSCI, ...)
  interrupted,     // KVM_RUN returned EINTR (a signal, immediate_exit): nothing happened
  // KVM_EXIT_DIRTY_RING_FULL: this vCPU's dirty ring is (softly) full; it will not enter the
  // guest again until the rings are harvested and KVM_RESET_DIRTY_RINGS freed entries
  // (kvm/dirty_tracker.h; RunLoop::on_dirty_ring_full). Nothing else happened.
  dirty_ring_full,
  other,
};

struct IoExit {
  std::uint16_t port = 0;
  std::uint8_t size = 0;  // 1, 2 or 4 bytes
  bool out = false;       // guest wrote (out/outs) rather than read
  std::uint32_t count = 0;
  std::uint64_t data_offset = 0;  // of the data in the kvm_run page
};

struct MmioExit {
  std::uint64_t address = 0;
  std::uint32_t length = 0;
  bool write = false;
};

struct VcpuExit {
  ExitKind kind = ExitKind::other;
  std::uint32_t reason = 0;  // KVM_EXIT_*
  IoExit io;
  MmioExit mmio;
  std::uint64_t hardware_entry_failure_reason = 0;
  std::uint32_t internal_suberror = 0;
  std::vector<std::uint64_t> internal_data;
  std::uint32_t system_event_type = 0;
};

// Pure: what `run` says after KVM_RUN returned 0.
VcpuExit classify_exit(const kvm_run& run);
std::string exit_reason_name(std::uint32_t reason);          // "KVM_EXIT_IO", ...
std::string internal_suberror_name(std::uint32_t suberror);  // "emulation failure", ...
// An Error for exits that end a guest (shutdown, fail_entry, internal_error, system_event,
// other), naming the exit and decoding what the kernel reported.
Error exit_error(const VcpuExit& exit, std::uint32_t vcpu);

// What the in-kernel local APIC holds (from its register page, KVM_GET_LAPIC): the vectors
// waiting to be delivered (IRR) and being serviced (ISR), and the processor priority below which
// a pending vector must wait. Pure parsing of the page.
struct LapicState {
  std::vector<std::uint8_t> pending;     // IRR, lowest first
  std::vector<std::uint8_t> in_service;  // ISR
  std::uint8_t processor_priority = 0;   // PPR
  std::uint32_t timer_lvt = 0;           // LVT timer: vector, mask (bit 16), mode (bits 18:17)
  std::uint32_t timer_initial = 0;       // initial count
  std::uint32_t timer_current = 0;       // current count
  // "periodic, 10000000 from 9412345", "masked", "off"
  [[nodiscard]] std::string timer_text() const;
  // A pending vector whose priority class is above the PPR's: one the vCPU can take now.
  [[nodiscard]] std::optional<std::uint8_t> deliverable() const noexcept;
};
LapicState parse_lapic(std::span<const std::uint8_t> page);

// Where a vCPU is, read while it is out of KVM_RUN: for a guest that never reported.
struct VcpuState {
  bool known = false;               // false when the kernel would not say
  bool halted = false;              // KVM_MP_STATE_HALTED: waiting in the kernel for an interrupt
  bool interrupts_enabled = false;  // RFLAGS.IF (arm64: PSTATE.I clear)
  std::uint64_t rip = 0;            // the instruction pointer (arm64: PC)
  std::optional<LapicState> lapic;  // with an in-kernel irqchip
};

class Vcpu {
 public:
  Vcpu(UniqueFd fd, std::uint32_t id, std::size_t mmap_size);

  [[nodiscard]] std::uint32_t id() const noexcept { return id_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

#if defined(__x86_64__)
  // x86 only (kvm/uapi.h): arm64's registers are KVM_{GET,SET}_ONE_REG's, its CPU features the
  // vCPU's KVM_ARM_VCPU_INIT.
  // KVM_SET_CPUID2: what CPUID tells the guest, and which LAPIC timer modes KVM then accepts.
  void set_cpuid(std::span<const kvm_cpuid_entry2> entries);
  [[nodiscard]] kvm_regs regs() const;
  void set_regs(const kvm_regs& regs);
  [[nodiscard]] kvm_sregs sregs() const;
  void set_sregs(const kvm_sregs& sregs);
#endif
#if defined(__aarch64__)
  // arm64's registers, one at a time: `id` is a KVM_REG_ARM64 register id of size U64.
  [[nodiscard]] std::uint64_t one_reg(std::uint64_t id) const;
  void set_one_reg(std::uint64_t id, std::uint64_t value);
#endif
  // KVM_MP_STATE_RUNNABLE, _HALTED, ... (only meaningful while the vCPU is not running).
  [[nodiscard]] std::uint32_t mp_state() const;
  // regs(), mp_state() and the local APIC together (arm64: PC and PSTATE, no halted state, no
  // LAPIC); never throws (known is false when the registers cannot be read; lapic is empty
  // without an in-kernel irqchip).
  [[nodiscard]] VcpuState state() const noexcept;

  // One KVM_RUN. EAGAIN is retried; EINTR comes back as ExitKind::interrupted so a stop request
  // can be honoured; other errors throw.
  VcpuExit run();
  // The bytes of an I/O exit's data inside the kvm_run page (in: fill them; out: read them).
  [[nodiscard]] std::span<std::uint8_t> io_data(const IoExit& io) const;
  // The 8-byte data of an MMIO exit.
  [[nodiscard]] std::span<std::uint8_t> mmio_data() const;
  // Makes the next (or current, with a signal) KVM_RUN return EINTR at once.
  void set_immediate_exit(bool value) noexcept;
  [[nodiscard]] kvm_run& shared() const noexcept { return *static_cast<kvm_run*>(run_.data()); }

 private:
  // The kvm_run mapping goes before the fd closes (members are destroyed bottom-up).
  UniqueFd fd_;
  MappedMemory run_;
  std::uint32_t id_;
};

// Throws an Error saying "not on this architecture" unless this is an x86_64 build: vfiokit's
// guests are 32-bit x86 programs. Every x86-only feature (a payload, the built-in VMM's guest)
// calls it before it touches KVM, so the message comes first, not a KVM error.
void require_x86_guests(std::string_view operation);

// Flat 32-bit protected mode, as vfiokit's payloads expect at entry: 4 GiB code (0x08) and data
// (0x10) segments, paging off, interrupts off, at `entry` with the stack at `stack`. x86 only:
// elsewhere it throws an Error saying the payload guests need an x86 host.
void enter_protected_mode(Vcpu& vcpu, std::uint32_t entry, std::uint32_t stack);

// Where an arm64 payload starts: EL1 on SP_EL1 (EL1h), the MMU off, every exception masked
// (DAIF), at `entry` with SP_EL1 = `stack`. arm64 only: elsewhere it throws an Error saying so.
void enter_aarch64_el1(Vcpu& vcpu, std::uint64_t entry, std::uint64_t stack);

}  // namespace vfiokit::kvm
