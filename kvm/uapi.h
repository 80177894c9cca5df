// Typed KVM ioctls (<linux/kvm.h>), with every struct layout vfiokit relies on checked against
// the kernel's.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>

#include "vfiokit/base/ioctl.h"

namespace vfiokit::kvm::uapi {

// KVM_API_VERSION: every kernel since 2.6.22 answers 12; anything else is not a usable KVM.
inline constexpr int kExpectedApiVersion = 12;

// /dev/kvm
inline constexpr IoctlNone kGetApiVersion = VFIOKIT_IOCTL_NONE(KVM_GET_API_VERSION);
// The argument is the machine type (0 on x86), by value.
inline constexpr IoctlValue<unsigned long> kCreateVm =
    VFIOKIT_IOCTL_VALUE(unsigned long, KVM_CREATE_VM);
inline constexpr IoctlValue<unsigned long> kCheckExtension =
    VFIOKIT_IOCTL_VALUE(unsigned long, KVM_CHECK_EXTENSION);
inline constexpr IoctlNone kGetVcpuMmapSize = VFIOKIT_IOCTL_NONE(KVM_GET_VCPU_MMAP_SIZE);
// VM or vCPU fd: a new fd with the binary statistics (kvm/stats.h).
inline constexpr IoctlNone kGetStatsFd = VFIOKIT_IOCTL_NONE(KVM_GET_STATS_FD);

// VM fd
inline constexpr IoctlValue<unsigned long> kCreateVcpu =
    VFIOKIT_IOCTL_VALUE(unsigned long, KVM_CREATE_VCPU);
// Kernel contract: userspace_addr..+memory_size stays mapped for as long as the slot exists.
inline constexpr IoctlPtr<const kvm_userspace_memory_region> kSetUserMemoryRegion =
    VFIOKIT_IOCTL_PTR(const kvm_userspace_memory_region, KVM_SET_USER_MEMORY_REGION);
inline constexpr IoctlNone kCreateIrqchip = VFIOKIT_IOCTL_NONE(KVM_CREATE_IRQCHIP);
#if defined(__x86_64__)
inline constexpr IoctlValue<unsigned long> kSetTssAddr =
    VFIOKIT_IOCTL_VALUE(unsigned long, KVM_SET_TSS_ADDR);
#endif
// struct kvm_irq_routing is {u32 nr; u32 flags; entries[]}: the kernel, compiled as C, finds
// the entries at offset 8 and encodes sizeof == 8 into KVM_SET_GSI_ROUTING. With the 6.1 UAPI
// headers, C++ sees __DECLARE_FLEX_ARRAY's empty struct as one byte, so `entries` moves to
// offset 16, sizeof becomes 16, and the KVM_SET_GSI_ROUTING macro expands to 0x4010ae6a, a
// request the kernel does not know (ENOTTY). Linux 6.3 fixed the macro for C++. vfiokit
// therefore never uses `entries`, and builds the request from the kernel's header size.
inline constexpr std::size_t kIrqRoutingEntriesOffset = 8;
// Kernel contract: `nr` entries of kvm_irq_routing_entry follow the 8-byte header.
inline constexpr IoctlPtr<const kvm_irq_routing> kSetGsiRouting{
    _IOC(_IOC_WRITE, KVMIO, 0x6a, kIrqRoutingEntriesOffset), "KVM_SET_GSI_ROUTING"};
inline constexpr IoctlPtr<const kvm_irqfd> kIrqfd = VFIOKIT_IOCTL_PTR(const kvm_irqfd, KVM_IRQFD);
inline constexpr IoctlPtr<const kvm_msi> kSignalMsi =
    VFIOKIT_IOCTL_PTR(const kvm_msi, KVM_SIGNAL_MSI);

// In-kernel devices, VM fd: arm64's interrupt controller (a vGICv3 and its ITS, kvm/gic.h) is
// one. KVM_CREATE_DEVICE writes the new device's fd into `fd`.
inline constexpr IoctlPtr<kvm_create_device> kCreateDevice =
    VFIOKIT_IOCTL_PTR(kvm_create_device, KVM_CREATE_DEVICE);
// Device fd. Kernel contract: `addr` points at the attribute's value (a u64 for a GIC address,
// unused for a control), which the kernel reads during the call.
inline constexpr IoctlPtr<const kvm_device_attr> kSetDeviceAttr =
    VFIOKIT_IOCTL_PTR(const kvm_device_attr, KVM_SET_DEVICE_ATTR);
static_assert(sizeof(kvm_create_device) == 12);
static_assert(offsetof(kvm_create_device, fd) == 4);
static_assert(sizeof(kvm_device_attr) == 24);
static_assert(offsetof(kvm_device_attr, group) == 4);
static_assert(offsetof(kvm_device_attr, attr) == 8);
static_assert(offsetof(kvm_device_attr, addr) == 16);

// Dirty tracking (kvm/dirty_tracker.h), VM fd. KVM_ENABLE_CAP turns on the dirty ring
// (KVM_CAP_DIRTY_LOG_RING{,_ACQ_REL}, args[0] = its size in bytes per vCPU) and manual protect
// (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE).
inline constexpr IoctlPtr<const kvm_enable_cap> kEnableCap =
    VFIOKIT_IOCTL_PTR(const kvm_enable_cap, KVM_ENABLE_CAP);
// Kernel contract: dirty_bitmap points to one bit per page of the slot, rounded up to whole
// 64-bit words; the kernel writes it (the struct itself is only read). Without manual protect
// the kernel also clears what it reports and write-protects those pages again.
inline constexpr IoctlPtr<const kvm_dirty_log> kGetDirtyLog =
    VFIOKIT_IOCTL_PTR(const kvm_dirty_log, KVM_GET_DIRTY_LOG);
// Kernel contract: first_page is a multiple of 64; num_pages is too unless the range ends at the
// slot's end; dirty_bitmap holds num_pages bits, bit 0 being first_page. The bits set are
// cleared and their pages write-protected again.
inline constexpr IoctlPtr<kvm_clear_dirty_log> kClearDirtyLog =
    VFIOKIT_IOCTL_PTR(kvm_clear_dirty_log, KVM_CLEAR_DIRTY_LOG);
// Returns how many ring entries it reset: those userspace marked KVM_DIRTY_GFN_F_RESET.
inline constexpr IoctlNone kResetDirtyRings = VFIOKIT_IOCTL_NONE(KVM_RESET_DIRTY_RINGS);

// vCPU fd
inline constexpr IoctlNone kRun = VFIOKIT_IOCTL_NONE(KVM_RUN);
inline constexpr IoctlPtr<kvm_mp_state> kGetMpState =
    VFIOKIT_IOCTL_PTR(kvm_mp_state, KVM_GET_MP_STATE);

// x86 vCPU state: general and segment registers, the local APIC, CPUID. These structs are
// arch/x86's (<asm/kvm.h>); arm64 has none of them but its own kvm_regs, reached through
// KVM_{GET,SET}_ONE_REG, and vfiokit runs no guest there yet (kvm/vcpu.h).
#if defined(__x86_64__)
inline constexpr IoctlPtr<kvm_regs> kGetRegs = VFIOKIT_IOCTL_PTR(kvm_regs, KVM_GET_REGS);
inline constexpr IoctlPtr<const kvm_regs> kSetRegs =
    VFIOKIT_IOCTL_PTR(const kvm_regs, KVM_SET_REGS);
inline constexpr IoctlPtr<kvm_sregs> kGetSregs = VFIOKIT_IOCTL_PTR(kvm_sregs, KVM_GET_SREGS);
inline constexpr IoctlPtr<const kvm_sregs> kSetSregs =
    VFIOKIT_IOCTL_PTR(const kvm_sregs, KVM_SET_SREGS);
// The in-kernel local APIC's register page (with an irqchip): what is pending and in service.
inline constexpr IoctlPtr<kvm_lapic_state> kGetLapic =
    VFIOKIT_IOCTL_PTR(kvm_lapic_state, KVM_GET_LAPIC);

// struct kvm_cpuid2 is {u32 nent; u32 padding; entries[]}: the same flexible-array trap as
// kvm_irq_routing above. C++ with the 6.1 headers makes it 12 bytes, and KVM_SET_CPUID2 would
// expand to 0x400cae90 (ENOTTY). The requests carry the kernel's 8, and the entries are reached
// by offset, never through `entries` or sizeof(kvm_cpuid2).
inline constexpr std::size_t kCpuidEntriesOffset = 8;
// Kernel contract: room for `nent` kvm_cpuid_entry2 follows the 8-byte header;
// KVM_GET_SUPPORTED_CPUID fails with E2BIG when there is not enough, else sets `nent`.
inline constexpr IoctlPtr<kvm_cpuid2> kGetSupportedCpuid{
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, kCpuidEntriesOffset), "KVM_GET_SUPPORTED_CPUID"};
inline constexpr IoctlPtr<const kvm_cpuid2> kSetCpuid2{
    _IOC(_IOC_WRITE, KVMIO, 0x90, kCpuidEntriesOffset), "KVM_SET_CPUID2"};
static_assert(offsetof(kvm_cpuid2, nent) == 0);
static_assert(offsetof(kvm_cpuid2, padding) == 4);
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(offsetof(kvm_cpuid_entry2, index) == 4);
static_assert(offsetof(kvm_cpuid_entry2, eax) == 12);
static_assert(offsetof(kvm_cpuid_entry2, edx) == 24);
#endif  // __x86_64__

#if defined(__aarch64__)
// arm64 vCPU set-up (<asm/kvm.h>): the target KVM prefers on this host (VM fd), KVM_ARM_VCPU_INIT
// with it before the vCPU's first run, and its registers one at a time.
inline constexpr IoctlPtr<kvm_vcpu_init> kArmPreferredTarget =
    VFIOKIT_IOCTL_PTR(kvm_vcpu_init, KVM_ARM_PREFERRED_TARGET);
inline constexpr IoctlPtr<const kvm_vcpu_init> kArmVcpuInit =
    VFIOKIT_IOCTL_PTR(const kvm_vcpu_init, KVM_ARM_VCPU_INIT);
// Kernel contract: `addr` points at a value of the size the register id encodes (u64 for the
// core registers vfiokit sets), read (SET) or written (GET) during the call.
inline constexpr IoctlPtr<const kvm_one_reg> kSetOneReg =
    VFIOKIT_IOCTL_PTR(const kvm_one_reg, KVM_SET_ONE_REG);
inline constexpr IoctlPtr<const kvm_one_reg> kGetOneReg =
    VFIOKIT_IOCTL_PTR(const kvm_one_reg, KVM_GET_ONE_REG);
static_assert(sizeof(kvm_vcpu_init) == 32);
static_assert(offsetof(kvm_vcpu_init, features) == 4);
static_assert(sizeof(kvm_one_reg) == 16);
static_assert(offsetof(kvm_one_reg, addr) == 8);
#endif  // __aarch64__

// struct kvm_irqfd is 32 bytes, not the 16 some write-ups claim: fd, gsi, flags, resamplefd,
// then 16 bytes of padding the kernel requires to be zero.
static_assert(sizeof(kvm_mp_state) == 4);
#if defined(__x86_64__)
static_assert(sizeof(kvm_lapic_state) == KVM_APIC_REG_SIZE);
static_assert(sizeof(kvm_regs) == 144);
#endif
static_assert(sizeof(kvm_irqfd) == 32);
static_assert(offsetof(kvm_irqfd, fd) == 0);
static_assert(offsetof(kvm_irqfd, gsi) == 4);
static_assert(offsetof(kvm_irqfd, flags) == 8);
static_assert(offsetof(kvm_irqfd, resamplefd) == 12);
static_assert(offsetof(kvm_irqfd, pad) == 16);
static_assert(offsetof(kvm_irq_routing, nr) == 0);
static_assert(offsetof(kvm_irq_routing, flags) == 4);
static_assert(sizeof(kvm_irq_routing_entry) == 48);
static_assert(offsetof(kvm_irq_routing_entry, type) == 4);
static_assert(offsetof(kvm_irq_routing_entry, u) == 16);
static_assert(offsetof(kvm_irq_routing_entry, flags) == 8);  // KVM_MSI_VALID_DEVID
static_assert(sizeof(kvm_irq_routing_msi) == 16);
static_assert(offsetof(kvm_irq_routing_msi, data) == 8);
static_assert(offsetof(kvm_irq_routing_msi, devid) == 12);
static_assert(sizeof(kvm_irq_routing_irqchip) == 8);
static_assert(sizeof(kvm_msi) == 32);
static_assert(offsetof(kvm_msi, data) == 8);
static_assert(offsetof(kvm_msi, flags) == 12);
static_assert(offsetof(kvm_msi, devid) == 16);
static_assert(sizeof(kvm_userspace_memory_region) == 32);
static_assert(offsetof(kvm_userspace_memory_region, guest_phys_addr) == 8);
static_assert(offsetof(kvm_userspace_memory_region, userspace_addr) == 24);
static_assert(offsetof(kvm_run, exit_reason) == 8);
static_assert(offsetof(kvm_run, immediate_exit) == 1);
static_assert(offsetof(kvm_run, io) == 32);
// Dirty tracking: none of these has a flexible array, so C++ and the kernel agree on every size
// (and the request codes built from them). A dirty ring entry is 16 bytes, flags first: the
// harvester's acquire load and release store go to that one 32-bit word.
static_assert(sizeof(kvm_dirty_gfn) == 16);
static_assert(offsetof(kvm_dirty_gfn, flags) == 0);
static_assert(offsetof(kvm_dirty_gfn, slot) == 4);
static_assert(offsetof(kvm_dirty_gfn, offset) == 8);
static_assert(sizeof(kvm_dirty_log) == 16);
static_assert(offsetof(kvm_dirty_log, dirty_bitmap) == 8);
static_assert(sizeof(kvm_clear_dirty_log) == 24);
static_assert(offsetof(kvm_clear_dirty_log, num_pages) == 4);
static_assert(offsetof(kvm_clear_dirty_log, first_page) == 8);
static_assert(offsetof(kvm_clear_dirty_log, dirty_bitmap) == 16);
static_assert(sizeof(kvm_enable_cap) == 104);
static_assert(offsetof(kvm_enable_cap, args) == 8);
static_assert(offsetof(kvm_enable_cap, pad) == 40);
// The dirty ring starts 64 pages into the vCPU fd's mapping, on x86 (arch/x86/include/uapi/
// asm/kvm.h) and on arm64 since Linux 6.2 added its ring. Debian 12's arm64 headers (6.1) leave
// the macro at linux/kvm.h's 0 ("no ring"), so vfiokit uses this constant, not the macro.
inline constexpr unsigned kDirtyRingPageOffset = 64;
static_assert(KVM_DIRTY_LOG_PAGE_OFFSET == kDirtyRingPageOffset || KVM_DIRTY_LOG_PAGE_OFFSET == 0);
#if defined(__x86_64__)
static_assert(KVM_DIRTY_LOG_PAGE_OFFSET == kDirtyRingPageOffset);
#endif
// The binary statistics' header, and a descriptor's 16 fixed bytes. The kernel's name[] follows
// at 16; C++ with the 6.1 headers puts it at 17 (the flexible array's one-byte wrapper, as with
// kvm_irq_routing above), so kvm/stats.cpp reads descriptors by offset, never by member or sizeof.
static_assert(sizeof(kvm_stats_header) == 24);
static_assert(offsetof(kvm_stats_header, data_offset) == 20);
static_assert(offsetof(kvm_stats_desc, size) == 6);
static_assert(offsetof(kvm_stats_desc, bucket_size) + sizeof(kvm_stats_desc::bucket_size) == 16);

}  // namespace vfiokit::kvm::uapi
