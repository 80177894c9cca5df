#include "vfiokit/kvm/vcpu.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "vfiokit/base/text.h"
#include "vfiokit/kvm/uapi.h"

namespace vfiokit::kvm {

#if defined(__aarch64__)
namespace {

constexpr std::uint64_t core_register(std::size_t offset) {
  // KVM_REG_ARM_CORE_REG: the register's offset in struct kvm_regs, in 32-bit words.
  return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offset / sizeof(std::uint32_t));
}

constexpr std::uint64_t kPcRegister = core_register(offsetof(kvm_regs, regs.pc));
constexpr std::uint64_t kPstateRegister = core_register(offsetof(kvm_regs, regs.pstate));
constexpr std::uint64_t kSpEl1Register = core_register(offsetof(kvm_regs, sp_el1));
// The ids KVM documents for them (Documentation/virt/kvm/api.rst, "ARM64 registers").
static_assert(kPcRegister == 0x6030000000100040);
static_assert(kPstateRegister == 0x6030000000100042);
static_assert(kSpEl1Register == 0x6030000000100044);

}  // namespace
#endif
namespace {

#if defined(__x86_64__)
kvm_segment flat_segment(std::uint16_t selector, std::uint8_t type) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = 1;  // 32-bit
  s.s = 1;   // code/data, not system
  s.l = 0;
  s.g = 1;  // 4 KiB granularity
  return s;
}
#endif

}  // namespace

VcpuExit classify_exit(const kvm_run& run) {
  VcpuExit exit;
  exit.reason = run.exit_reason;
  switch (run.exit_reason) {
    case KVM_EXIT_IO:
      exit.kind = ExitKind::io;
      exit.io = {run.io.port, run.io.size, run.io.direction == KVM_EXIT_IO_OUT, run.io.count,
                 run.io.data_offset};
      break;
    case KVM_EXIT_MMIO:
      exit.kind = ExitKind::mmio;
      exit.mmio = {run.mmio.phys_addr, run.mmio.len, run.mmio.is_write != 0};
      break;
    case KVM_EXIT_HLT:
      exit.kind = ExitKind::hlt;
      break;
    case KVM_EXIT_SHUTDOWN:
      exit.kind = ExitKind::shutdown;
      break;
    case KVM_EXIT_FAIL_ENTRY:
      exit.kind = ExitKind::fail_entry;
      exit.hardware_entry_failure_reason = run.fail_entry.hardware_entry_failure_reason;
      break;
    case KVM_EXIT_INTERNAL_ERROR:
      exit.kind = ExitKind::internal_error;
      exit.internal_suberror = run.internal.suberror;
      for (std::uint32_t i = 0; i < std::min<std::uint32_t>(run.internal.ndata, 16); ++i) {
        exit.internal_data.push_back(run.internal.data[i]);
      }
      break;
    case KVM_EXIT_SYSTEM_EVENT:
      exit.kind = ExitKind::system_event;
      exit.system_event_type = run.system_event.type;
      break;
    case KVM_EXIT_INTR:
      exit.kind = ExitKind::interrupted;
      break;
    case KVM_EXIT_DIRTY_RING_FULL:
      exit.kind = ExitKind::dirty_ring_full;
      break;
    default:
      exit.kind = ExitKind::other;
      break;
  }
  return exit;
}

std::string exit_reason_name(std::uint32_t reason) {
  static const char* const kNames[] = {"KVM_EXIT_UNKNOWN",
                                       "KVM_EXIT_EXCEPTION",
                                       "KVM_EXIT_IO",
                                       "KVM_EXIT_HYPERCALL",
                                       "KVM_EXIT_DEBUG",
                                       "KVM_EXIT_HLT",
                                       "KVM_EXIT_MMIO",
                                       "KVM_EXIT_IRQ_WINDOW_OPEN",
                                       "KVM_EXIT_SHUTDOWN",
                                       "KVM_EXIT_FAIL_ENTRY",
                                       "KVM_EXIT_INTR",
                                       "KVM_EXIT_SET_TPR",
                                       "KVM_EXIT_TPR_ACCESS",
                                       "KVM_EXIT_S390_SIEIC",
                                       "KVM_EXIT_S390_RESET",
                                       "KVM_EXIT_DCR",
                                       "KVM_EXIT_NMI",
                                       "KVM_EXIT_INTERNAL_ERROR",
                                       "KVM_EXIT_OSI",
                                       "KVM_EXIT_PAPR_HCALL",
                                       "KVM_EXIT_S390_UCONTROL",
                                       "KVM_EXIT_WATCHDOG",
                                       "KVM_EXIT_S390_TSCH",
                                       "KVM_EXIT_EPR",
                                       "KVM_EXIT_SYSTEM_EVENT",
                                       "KVM_EXIT_S390_STSI",
                                       "KVM_EXIT_IOAPIC_EOI",
                                       "KVM_EXIT_HYPERV",
                                       "KVM_EXIT_ARM_NISV",
                                       "KVM_EXIT_X86_RDMSR",
                                       "KVM_EXIT_X86_WRMSR",
                                       "KVM_EXIT_DIRTY_RING_FULL",
                                       "KVM_EXIT_AP_RESET_HOLD",
                                       "KVM_EXIT_X86_BUS_LOCK",
                                       "KVM_EXIT_XEN",
                                       "KVM_EXIT_RISCV_SBI",
                                       "KVM_EXIT_RISCV_CSR",
                                       "KVM_EXIT_NOTIFY"};
  if (reason < std::size(kNames)) return kNames[reason];
  return "exit reason " + std::to_string(reason);
}

std::string internal_suberror_name(std::uint32_t suberror) {
  switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION:
      return "emulation failure";
    case KVM_INTERNAL_ERROR_SIMUL_EX:
      return "exception while delivering an exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
      return "exit while delivering an event";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
      return "unexpected exit reason";
    default:
      return "suberror " + std::to_string(suberror);
  }
}

Error exit_error(const VcpuExit& exit, std::uint32_t vcpu) {
  Error e("KVM_RUN", exit_reason_name(exit.reason));
  e.with("vcpu", std::to_string(vcpu));
  switch (exit.kind) {
    case ExitKind::shutdown:
      return std::move(
          e.hint("the guest triple-faulted (or asked to shut down): an exception it "
                 "could not handle; check its IDT, GDT and stack"));
    case ExitKind::fail_entry:
      e.with("hardware_entry_failure_reason", hex(exit.hardware_entry_failure_reason));
      return std::move(e.hint("the CPU refused the guest state (segments, control registers)"));
    case ExitKind::internal_error: {
      e.with("suberror", internal_suberror_name(exit.internal_suberror));
      std::vector<std::string> data;
      for (auto d : exit.internal_data) data.push_back(hex(d));
      if (!data.empty()) e.with("data", join(data, " "));
      return std::move(e.hint(exit.internal_suberror == KVM_INTERNAL_ERROR_EMULATION
                                  ? "KVM could not emulate an instruction; on a host KVM that "
                                    "runs only real-mode code, run the guest in the rig"
                                  : "see dmesg for kvm messages"));
    }
    case ExitKind::system_event:
      e.with("type", std::to_string(exit.system_event_type));
      return std::move(e.hint("the guest requested a reset, shutdown or crash"));
    case ExitKind::dirty_ring_full:
      return std::move(e.hint(
          "the vCPU's dirty ring is full and nobody harvests it: give the run loop a handler "
          "(RunLoop::on_dirty_ring_full with DirtyTracker::ring_full_handler())"));
    default:
      return e;
  }
}

Vcpu::Vcpu(UniqueFd fd, std::uint32_t id, std::size_t mmap_size) : fd_(std::move(fd)), id_(id) {
  // Kernel contract: the vCPU fd maps KVM_GET_VCPU_MMAP_SIZE bytes of kvm_run and friends.
  void* shared = ::mmap(nullptr, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (shared == MAP_FAILED) {
    throw Error::from_last_errno("mmap kvm_run").with("vcpu", std::to_string(id));
  }
  run_ = MappedMemory(shared, mmap_size);
}

#if defined(__x86_64__)
kvm_regs Vcpu::regs() const {
  kvm_regs regs{};
  do_ioctl(fd_.get(), uapi::kGetRegs, &regs);
  return regs;
}

void Vcpu::set_regs(const kvm_regs& regs) { do_ioctl(fd_.get(), uapi::kSetRegs, &regs); }

void Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) {
  std::vector<kvm_cpuid_entry2> buffer(1 + entries.size());  // [0] holds the 8-byte header
  auto* header = reinterpret_cast<kvm_cpuid2*>(buffer.data());
  header->nent = static_cast<std::uint32_t>(entries.size());
  std::memcpy(reinterpret_cast<std::uint8_t*>(header) + uapi::kCpuidEntriesOffset, entries.data(),
              entries.size() * sizeof(kvm_cpuid_entry2));
  const int rc = try_ioctl(fd_.get(), uapi::kSetCpuid2, header);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kSetCpuid2.name)
        .with("vcpu", std::to_string(id_))
        .with("entries", std::to_string(entries.size()));
  }
}

#endif

std::uint32_t Vcpu::mp_state() const {
  kvm_mp_state state{};
  do_ioctl(fd_.get(), uapi::kGetMpState, &state);
  return state.mp_state;
}

std::optional<std::uint8_t> LapicState::deliverable() const noexcept {
  // Intel SDM vol. 3, 11.8.3.1: a pending vector is delivered when its priority class (bits
  // 7:4) is above the processor priority class.
  for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
    if ((*it >> 4) > (processor_priority >> 4)) return *it;
  }
  return std::nullopt;
}

std::string LapicState::timer_text() const {
  if (timer_lvt & (1u << 16)) return "masked";
  if (timer_initial == 0) return "off";
  static constexpr const char* kModes[] = {"one-shot", "periodic", "TSC-deadline", "reserved"};
  return std::string(kModes[(timer_lvt >> 17) & 3]) + " (vector " + hex(timer_lvt & 0xff) +
         "), counting " + std::to_string(timer_current) + " of " + std::to_string(timer_initial);
}

LapicState parse_lapic(std::span<const std::uint8_t> page) {
  // The APIC register page: each 256-bit register as eight 32-bit words, one per 16 bytes
  // (ISR at 0x100, IRR at 0x200); PPR at 0xa0.
  constexpr std::size_t kIsr = 0x100, kIrr = 0x200, kPpr = 0xa0;
  LapicState state;
  if (page.size() < kIrr + 0x80) return state;
  auto vectors = [&](std::size_t base) {
    std::vector<std::uint8_t> set;
    for (unsigned word = 0; word < 8; ++word) {
      std::uint32_t bits = 0;
      std::memcpy(&bits, page.data() + base + word * 16, sizeof bits);
      for (unsigned bit = 0; bit < 32; ++bit) {
        if (bits & (1u << bit)) set.push_back(static_cast<std::uint8_t>(word * 32 + bit));
      }
    }
    return set;
  };
  state.pending = vectors(kIrr);
  state.in_service = vectors(kIsr);
  state.processor_priority = page[kPpr];
  auto read32 = [&](std::size_t offset) {
    std::uint32_t value = 0;
    std::memcpy(&value, page.data() + offset, sizeof value);
    return value;
  };
  if (page.size() >= 0x3a0) {
    state.timer_lvt = read32(0x320);
    state.timer_initial = read32(0x380);
    state.timer_current = read32(0x390);
  }
  return state;
}

VcpuState Vcpu::state() const noexcept {
#if defined(__x86_64__)
  VcpuState state;
  try {
    const kvm_regs r = regs();
    state = {true, mp_state() == KVM_MP_STATE_HALTED, (r.rflags & 0x200u) != 0, r.rip, {}};
  } catch (const Error&) {
    return {};
  }
  kvm_lapic_state lapic{};
  if (try_ioctl(fd_.get(), uapi::kGetLapic, &lapic) == 0) {
    state.lapic =
        parse_lapic({reinterpret_cast<const std::uint8_t*>(lapic.regs), sizeof lapic.regs});
  }
  return state;
#elif defined(__aarch64__)
  // arm64: the registers one at a time. A vCPU waiting in WFI is still "runnable" to KVM, so
  // `halted` is not known here and stays false.
  try {
    const std::uint64_t pstate = one_reg(kPstateRegister);
    constexpr std::uint64_t kIrqMasked = 1u << 7;  // PSTATE.I
    return {true, false, (pstate & kIrqMasked) == 0, one_reg(kPcRegister), {}};
  } catch (const Error&) {
    return {};
  }
#else
  return {};
#endif
}

#if defined(__aarch64__)
std::uint64_t Vcpu::one_reg(std::uint64_t id) const {
  std::uint64_t value = 0;
  // Kernel contract: `addr` points at 8 bytes (a U64 id), which KVM_GET_ONE_REG writes.
  const kvm_one_reg reg{id, reinterpret_cast<std::uintptr_t>(&value)};
  const int rc = try_ioctl(fd_.get(), uapi::kGetOneReg, &reg);
  if (rc < 0) throw ioctl_error(rc, uapi::kGetOneReg.name).with("register", hex(id));
  return value;
}

void Vcpu::set_one_reg(std::uint64_t id, std::uint64_t value) {
  // Kernel contract: `addr` points at 8 bytes (a U64 id), which KVM_SET_ONE_REG reads.
  const kvm_one_reg reg{id, reinterpret_cast<std::uintptr_t>(&value)};
  const int rc = try_ioctl(fd_.get(), uapi::kSetOneReg, &reg);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kSetOneReg.name)
        .with("register", hex(id))
        .with("value", hex(value));
  }
}

void enter_aarch64_el1(Vcpu& vcpu, std::uint64_t entry, std::uint64_t stack) {
  constexpr std::uint64_t kEl1h = 0x5;             // PSR_MODE_EL1h: EL1, SP_EL1
  constexpr std::uint64_t kAllMasked = 0xfu << 6;  // D, A, I, F
  vcpu.set_one_reg(kPstateRegister, kEl1h | kAllMasked);
  vcpu.set_one_reg(kSpEl1Register, stack);
  vcpu.set_one_reg(kPcRegister, entry);
}
#else
void enter_aarch64_el1(Vcpu&, std::uint64_t, std::uint64_t) {
  throw Error("enter EL1", "not on this architecture: an arm64 guest needs an arm64 KVM host");
}
#endif

#if defined(__x86_64__)
kvm_sregs Vcpu::sregs() const {
  kvm_sregs sregs{};
  do_ioctl(fd_.get(), uapi::kGetSregs, &sregs);
  return sregs;
}

void Vcpu::set_sregs(const kvm_sregs& sregs) { do_ioctl(fd_.get(), uapi::kSetSregs, &sregs); }
#endif

VcpuExit Vcpu::run() {
  for (;;) {
    const int rc = try_ioctl(fd_.get(), uapi::kRun);
    if (rc == 0) return classify_exit(shared());
    if (rc == -EAGAIN) continue;
    if (rc == -EINTR) {
      VcpuExit exit;
      exit.kind = ExitKind::interrupted;
      exit.reason = KVM_EXIT_INTR;
      return exit;
    }
    throw ioctl_error(rc, uapi::kRun.name).with("vcpu", std::to_string(id_));
  }
}

std::span<std::uint8_t> Vcpu::io_data(const IoExit& io) const {
  auto* base = static_cast<std::uint8_t*>(run_.data());
  const std::size_t length = std::size_t{io.size} * io.count;
  if (io.data_offset > run_.size() || length > run_.size() - io.data_offset) {
    throw Error("KVM I/O exit", "data lies outside the kvm_run page")
        .with("vcpu", std::to_string(id_));
  }
  return {base + io.data_offset, length};
}

void require_x86_guests(std::string_view operation) {
#if !defined(__x86_64__)
  throw Error(std::string(operation),
              "not on this architecture: vfiokit's guests (the payloads, the built-in VMM's) are "
              "32-bit x86 programs, which KVM runs on an x86_64 host only")
      .hint("run it on an x86_64 host");
#else
  static_cast<void>(operation);
#endif
}

std::span<std::uint8_t> Vcpu::mmio_data() const { return {shared().mmio.data, 8}; }

void Vcpu::set_immediate_exit(bool value) noexcept {
  // A plain store: KVM reads the flag on entry, and the signal that follows a set makes a
  // running KVM_RUN come back to look at it.
  shared().immediate_exit = value ? 1 : 0;
}

#if defined(__x86_64__)
void enter_protected_mode(Vcpu& vcpu, std::uint32_t entry, std::uint32_t stack) {
  kvm_sregs sregs = vcpu.sregs();
  sregs.cs = flat_segment(0x08, 0xb);  // execute/read, accessed
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_segment(0x10, 0x3);  // read/write
  sregs.cr0 |= 0x1;                                                                // PE
  sregs.cr0 &= ~std::uint64_t{0x80000000};                                         // PG off
  vcpu.set_sregs(sregs);
  kvm_regs regs{};
  regs.rip = entry;
  regs.rsp = stack;
  regs.rflags = 0x2;  // bit 1 is reserved and always set; interrupts off until the payload sti's
  vcpu.set_regs(regs);
}
#else
void enter_protected_mode(Vcpu&, std::uint32_t, std::uint32_t) {
  require_x86_guests("enter protected mode");
}
#endif

}  // namespace vfiokit::kvm
