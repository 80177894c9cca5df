#include "vfiokit/kvm/vm.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/kvm/gic.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/kvm/uapi.h"
#include "vfiokit/kvm/vcpu.h"

namespace vfiokit::kvm {
namespace {

constexpr std::uint64_t kPage = 4096;
// The smallest ring every x86 host takes: KVM keeps 64 entries in reserve, plus 512 for the
// Intel PML buffer a vCPU may flush at once, and refuses a ring no larger than that.
constexpr std::uint32_t kMinimumRingEntriesWithPml = 1024;

std::string describe(const MemorySlot& s) {
  return "slot " + std::to_string(s.slot) + " " + hex(s.guest_address) + "-" +
         hex(s.guest_address + s.size - 1);
}

}  // namespace

void MemorySlotTable::add(const MemorySlot& slot) {
  auto fail = [&](std::string why) {
    return Error("add memory slot", std::move(why)).with("slot", std::to_string(slot.slot));
  };
  if (slot.size == 0) throw fail("empty slot");
  if (slot.guest_address % kPage || slot.size % kPage || slot.host_address % kPage) {
    throw fail("guest address, size and host address must be page aligned");
  }
  if (slot.guest_address > ~std::uint64_t{0} - (slot.size - 1)) throw fail("range wraps around");
  if (slot.slot >= slot_limit_) {
    throw fail("KVM takes slot numbers below " + std::to_string(slot_limit_));
  }
  if (slots_.count(slot.slot))
    throw fail("slot number already in use by " + describe(slots_.at(slot.slot)));
  const std::uint64_t last = slot.guest_address + slot.size - 1;
  for (const auto& [id, other] : slots_) {
    const std::uint64_t other_last = other.guest_address + other.size - 1;
    if (slot.guest_address <= other_last && other.guest_address <= last) {
      throw fail(hex(slot.guest_address) + "-" + hex(last) + " overlaps " + describe(other));
    }
  }
  slots_.emplace(slot.slot, slot);
}

void MemorySlotTable::remove(std::uint32_t slot) {
  if (slots_.erase(slot) == 0) {
    throw Error("remove memory slot", "no slot " + std::to_string(slot));
  }
}

std::uint32_t MemorySlotTable::free_slot() const {
  std::uint32_t candidate = 0;
  for (const auto& [id, slot] : slots_) {  // in order of number: the first gap is the answer
    if (id != candidate) break;
    ++candidate;
  }
  if (candidate >= slot_limit_) {
    throw Error("add memory slot", "all " + std::to_string(slot_limit_) + " slots are in use");
  }
  return candidate;
}

const MemorySlot* MemorySlotTable::find(std::uint32_t slot) const {
  const auto it = slots_.find(slot);
  return it == slots_.end() ? nullptr : &it->second;
}

const MemorySlot* MemorySlotTable::containing(std::uint64_t address) const {
  for (const auto& [id, s] : slots_) {
    if (address >= s.guest_address && address - s.guest_address < s.size) return &s;
  }
  return nullptr;
}

Vm::Vm(UniqueFd fd, const KvmSystem& system)
    : fd_(std::move(fd)), vcpu_mmap_size_(system.vcpu_mmap_size()) {
#if defined(__x86_64__)
  cpuid_ = system.supported_cpuid();
#endif
  // KVM refuses slot numbers from KVM_USER_MEM_SLOTS up; older kernels report fewer.
  const int slots = system.check_extension(KVM_CAP_NR_MEMSLOTS);
  if (slots > 0) slots_ = MemorySlotTable(static_cast<std::uint32_t>(slots));
}

std::uint32_t Vm::map_memory(std::uint64_t guest_address, std::span<std::uint8_t> host) {
  const std::uint32_t slot = slots_.free_slot();
  add_memory(slot, guest_address, host);
  return slot;
}

void Vm::add_memory(std::uint32_t slot, std::uint64_t guest_address, std::span<std::uint8_t> host,
                    std::uint32_t flags) {
  const MemorySlot entry{slot, guest_address, host.size(),
                         reinterpret_cast<std::uintptr_t>(host.data()), flags};
  slots_.add(entry);
  const kvm_userspace_memory_region region{slot, flags, guest_address, host.size(),
                                           entry.host_address};
  const int rc = try_ioctl(fd_.get(), uapi::kSetUserMemoryRegion, &region);
  if (rc < 0) {
    slots_.remove(slot);
    throw ioctl_error(rc, uapi::kSetUserMemoryRegion.name)
        .with("slot", std::to_string(slot))
        .with("guest_address", hex(guest_address))
        .with("size", human_size(host.size()));
  }
}

void Vm::remove_memory(std::uint32_t slot) {
  const MemorySlot* existing = slots_.find(slot);
  if (!existing) throw Error("remove memory slot", "no slot " + std::to_string(slot));
  // A slot is deleted by setting its size to 0.
  const kvm_userspace_memory_region region{slot, 0, existing->guest_address, 0, 0};
  do_ioctl(fd_.get(), uapi::kSetUserMemoryRegion, &region);
  slots_.remove(slot);
}

#if defined(__aarch64__)
namespace {

// KVM_SET_DEVICE_ATTR on one of the GIC's devices. `value` is read by the kernel during the call.
void set_gic_attribute(int device, std::uint32_t group, std::uint64_t attribute,
                       const std::uint64_t* value, const char* what) {
  kvm_device_attr attr{};
  attr.group = group;
  attr.attr = attribute;
  attr.addr = reinterpret_cast<std::uintptr_t>(value);
  const int rc = try_ioctl(device, uapi::kSetDeviceAttr, &attr);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kSetDeviceAttr.name)
        .with("attribute", what)
        .with("value", value ? hex(*value) : std::string("none"));
  }
}

UniqueFd create_gic_device(int vm, std::uint32_t type, const char* name) {
  kvm_create_device device{};
  device.type = type;
  const int rc = try_ioctl(vm, uapi::kCreateDevice, &device);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kCreateDevice.name)
        .with("device", name)
        .hint(rc == -ENODEV ? "this host's KVM has no " + std::string(name) +
                                  " (a GICv2-only host, or KVM without an in-kernel GIC)"
                            : "");
  }
  return UniqueFd(static_cast<int>(device.fd));
}

}  // namespace

void Vm::create_irqchip() {
  if (irqchip_) throw Error("create irqchip", "this VM already has one");
  // Kernel contract: KVM_VGIC_V3_ADDR_TYPE_REDIST is the base of a contiguous run of 128 KiB
  // redistributors, one per vCPU in id order; the distributor and the ITS are 64 KiB aligned.
  // Kept only when all of it worked. (KVM keeps a vGIC it made for the VM's life, so a VM whose
  // irqchip failed half-way is not one to try again with: the caller drops it.)
  UniqueFd gic = create_gic_device(fd_.get(), KVM_DEV_TYPE_ARM_VGIC_V3, "vGICv3");
  set_gic_attribute(gic.get(), KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST,
                    &kGicDistributor, "GICv3 distributor address");
  set_gic_attribute(gic.get(), KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST,
                    &kGicRedistributors, "GICv3 redistributor address");
  // The ITS only after the vGICv3 it belongs to.
  UniqueFd its = create_gic_device(fd_.get(), KVM_DEV_TYPE_ARM_VGIC_ITS, "vGICv3 ITS");
  set_gic_attribute(its.get(), KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, &kGicIts,
                    "ITS address");
  gic_ = std::move(gic);
  its_ = std::move(its);
  irqchip_ = true;
}

void Vm::finish_irqchip() {
  if (!irqchip_) return;
  if (vcpus_created_ == 0) {
    throw Error("finish irqchip", "no vCPU yet: the vGIC sizes its redistributors by them")
        .hint("create every vCPU first");
  }
  set_gic_attribute(gic_.get(), KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, nullptr,
                    "vGICv3 init");
  set_gic_attribute(its_.get(), KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, nullptr,
                    "ITS init");
}
#else
void Vm::create_irqchip() {
#if !defined(__x86_64__)
  throw Error("create irqchip",
              "not on this architecture: vfiokit creates x86's in-kernel irqchip (PIC, IOAPIC, "
              "LAPICs) and arm64's (a vGICv3 with an ITS)")
      .hint("wire interrupts into a VM on an x86_64 or arm64 host");
#endif
  do_ioctl(fd_.get(), uapi::kCreateIrqchip);
  irqchip_ = true;
}

void Vm::finish_irqchip() {}
#endif

void Vm::set_gsi_routing(std::span<const msix::RouteEntry> entries) {
  // Kernel contract: an 8-byte header {nr, flags = 0}, then exactly `nr` 48-byte entries (at
  // the kernel's offset, not the one C++ computes: see kvm/uapi.h).
  std::vector<std::uint8_t> buffer(uapi::kIrqRoutingEntriesOffset +
                                   entries.size() * sizeof(kvm_irq_routing_entry));
  auto* routing = reinterpret_cast<kvm_irq_routing*>(buffer.data());
  routing->nr = static_cast<std::uint32_t>(entries.size());
  routing->flags = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    kvm_irq_routing_entry e{};
    e.gsi = entries[i].gsi;
    if (const auto* msi = std::get_if<msix::MsiMessage>(&entries[i].target)) {
      e.type = KVM_IRQ_ROUTING_MSI;
      e.u.msi.address_lo = static_cast<std::uint32_t>(msi->address);
      e.u.msi.address_hi = static_cast<std::uint32_t>(msi->address >> 32);
      e.u.msi.data = msi->data;
      if (msi->device_id) {
        e.flags = KVM_MSI_VALID_DEVID;
        e.u.msi.devid = *msi->device_id;
      }
    } else {
      const auto& pin = std::get<msix::IrqchipPin>(entries[i].target);
      e.type = KVM_IRQ_ROUTING_IRQCHIP;
      e.u.irqchip.irqchip = pin.chip;
      e.u.irqchip.pin = pin.pin;
    }
    std::memcpy(buffer.data() + uapi::kIrqRoutingEntriesOffset + i * sizeof e, &e, sizeof e);
  }
  const int rc = try_ioctl(fd_.get(), uapi::kSetGsiRouting, routing);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kSetGsiRouting.name)
        .with("routes", std::to_string(entries.size()))
        .hint(has_irqchip() ? "a route names a GSI or irqchip pin KVM rejects"
                            : "create the in-kernel irqchip first");
  }
}

void Vm::assign_irqfd(int eventfd, std::uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<std::uint32_t>(eventfd);
  irqfd.gsi = gsi;
  const int rc = try_ioctl(fd_.get(), uapi::kIrqfd, &irqfd);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kIrqfd.name)
        .with("gsi", std::to_string(gsi))
        .with("eventfd", std::to_string(eventfd))
        .hint(rc == -EBUSY ? "the eventfd is already assigned to this VM" : "");
  }
}

void Vm::deassign_irqfd(int eventfd, std::uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<std::uint32_t>(eventfd);
  irqfd.gsi = gsi;
  irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  const int rc = try_ioctl(fd_.get(), uapi::kIrqfd, &irqfd);
  if (rc < 0) {
    throw ioctl_error(rc, "KVM_IRQFD (deassign)")
        .with("gsi", std::to_string(gsi))
        .with("eventfd", std::to_string(eventfd));
  }
}

// ---- INTx (issue 14): the level-triggered irqfd ----
void Vm::assign_resample_irqfd(int eventfd, int resamplefd, std::uint32_t gsi) {
  // Kernel contract: the 32-byte kvm_irqfd (kvm/uapi.h) with resamplefd at offset 12. KVM
  // asserts `gsi` for this irqfd's source on each signal of `eventfd` and keeps it asserted;
  // when the guest's EOI reaches the IOAPIC pin, KVM deasserts it and signals `resamplefd`.
  // EINVAL without an in-kernel irqchip (or KVM_CAP_IRQFD_RESAMPLE).
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<std::uint32_t>(eventfd);
  irqfd.gsi = gsi;
  irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
  irqfd.resamplefd = static_cast<std::uint32_t>(resamplefd);
  const int rc = try_ioctl(fd_.get(), uapi::kIrqfd, &irqfd);
  if (rc < 0) {
    throw ioctl_error(rc, "KVM_IRQFD (resample)")
        .with("gsi", std::to_string(gsi))
        .with("eventfd", std::to_string(eventfd))
        .with("resamplefd", std::to_string(resamplefd))
        .hint(rc == -EBUSY    ? "the eventfd is already assigned to this VM"
              : has_irqchip() ? "the GSI must be routed to an IOAPIC pin"
                              : "create the in-kernel irqchip first");
  }
}
// ---- end INTx ----

void Vm::signal_msi(const msix::MsiMessage& message) {
  kvm_msi msi{};
  msi.address_lo = static_cast<std::uint32_t>(message.address);
  msi.address_hi = static_cast<std::uint32_t>(message.address >> 32);
  msi.data = message.data;
  if (message.device_id) {
    msi.flags = KVM_MSI_VALID_DEVID;
    msi.devid = *message.device_id;
  }
  const int rc = try_ioctl(fd_.get(), uapi::kSignalMsi, &msi);
  if (rc < 0) throw ioctl_error(rc, uapi::kSignalMsi.name).with("msi_data", hex(message.data));
}

Vcpu Vm::create_vcpu(std::uint32_t id) {
  const int rc = try_ioctl(fd_.get(), uapi::kCreateVcpu, static_cast<unsigned long>(id));
  if (rc < 0) throw ioctl_error(rc, uapi::kCreateVcpu.name).with("vcpu", std::to_string(id));
  ++vcpus_created_;  // KVM counts a vCPU from here even if the rest fails
  Vcpu vcpu(UniqueFd(rc), id, vcpu_mmap_size_);
#if defined(__x86_64__)
  vcpu.set_cpuid(cpuid_);
#elif defined(__aarch64__)
  // A vCPU runs nothing until KVM_ARM_VCPU_INIT: with the target KVM prefers here and no
  // optional features, it resets to EL1h with every exception masked (DAIF).
  kvm_vcpu_init init{};
  do_ioctl(fd_.get(), uapi::kArmPreferredTarget, &init);
  const int init_rc = try_ioctl(vcpu.fd(), uapi::kArmVcpuInit, &init);
  if (init_rc < 0) {
    throw ioctl_error(init_rc, uapi::kArmVcpuInit.name)
        .with("vcpu", std::to_string(id))
        .with("target", std::to_string(init.target));
  }
#endif
  return vcpu;
}

// ---- Dirty tracking ----

int Vm::check_extension(unsigned long capability) const {
  const int rc = try_ioctl(fd_.get(), uapi::kCheckExtension, capability);
  return rc < 0 ? 0 : rc;
}

void Vm::enable_capability(std::uint32_t capability, std::uint64_t argument) {
  kvm_enable_cap cap{};
  cap.cap = capability;
  cap.args[0] = argument;
  const int rc = try_ioctl(fd_.get(), uapi::kEnableCap, &cap);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kEnableCap.name)
        .with("capability", std::to_string(capability))
        .with("argument", hex(argument));
  }
}

void Vm::enable_dirty_ring(RingOrdering ordering, std::uint32_t entries) {
  const std::uint32_t capability = ordering == RingOrdering::acquire_release
                                       ? KVM_CAP_DIRTY_LOG_RING_ACQ_REL
                                       : KVM_CAP_DIRTY_LOG_RING;
  auto fail = [&](std::string why) {
    return Error("enable the KVM dirty ring", std::move(why))
        .with("capability", ring_capability_name(ordering))
        .with("entries", std::to_string(entries));
  };
  if (vcpus_created_ > 0) {
    throw fail(std::to_string(vcpus_created_) + " vCPU(s) already exist")
        .hint("enable the ring (create the DirtyTracker) before the first create_vcpu()");
  }
  if (dirty_ring_entries_ != 0) throw fail("the ring is already enabled");
  const int max_bytes = check_extension(capability);
  if (max_bytes <= 0) {
    throw fail("this kernel does not offer it").hint("use the bitmap (KVM_GET_DIRTY_LOG)");
  }
  const std::uint64_t bytes = std::uint64_t{entries} * sizeof(kvm_dirty_gfn);
  if (entries == 0 || (entries & (entries - 1)) != 0) {
    throw fail("the entry count must be a power of two");
  }
  if (bytes < kPage || bytes > static_cast<std::uint64_t>(max_bytes)) {
    throw fail(std::to_string(bytes) + " bytes is outside what KVM takes")
        .hint("between " + std::to_string(kPage / sizeof(kvm_dirty_gfn)) + " and " +
              std::to_string(static_cast<std::uint64_t>(max_bytes) / sizeof(kvm_dirty_gfn)) +
              " entries");
  }
  try {
    enable_capability(capability, bytes);
  } catch (Error& e) {
    // KVM also keeps a reserve (64 entries, and 512 more on Intel hosts with PML) below which
    // a ring is refused with a bare EINVAL.
    if (e.errno_value() == EINVAL && entries < kMinimumRingEntriesWithPml) {
      e.hint("KVM refuses rings smaller than its reserve: with Intel PML at least " +
             std::to_string(kMinimumRingEntriesWithPml) + " entries");
    }
    throw;
  }
  dirty_ring_entries_ = entries;
  dirty_ring_ordering_ = ordering;
}

std::uint32_t Vm::reset_dirty_rings() {
  return static_cast<std::uint32_t>(do_ioctl(fd_.get(), uapi::kResetDirtyRings));
}

void Vm::get_dirty_log(const MemorySlot& slot, std::span<std::uint64_t> bitmap) {
  if (bitmap.size() < dirty_bitmap_words(slot.size / kPage)) {
    throw Error("KVM_GET_DIRTY_LOG", "the bitmap is smaller than the slot")
        .with("slot", std::to_string(slot.slot));
  }
  kvm_dirty_log log{};
  log.slot = slot.slot;
  log.dirty_bitmap = bitmap.data();
  const int rc = try_ioctl(fd_.get(), uapi::kGetDirtyLog, &log);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kGetDirtyLog.name)
        .with("slot", std::to_string(slot.slot))
        .hint(rc == -ENOENT  ? "the slot was not added with KVM_MEM_LOG_DIRTY_PAGES"
              : rc == -ENXIO ? "the dirty ring is enabled on this VM: harvest the ring"
                             : "");
  }
}

void Vm::clear_dirty_log(const MemorySlot& slot, const ClearRange& range,
                         std::span<const std::uint64_t> bitmap) {
  if (!clear_range_valid(range.first_page, range.pages, slot.size / kPage) ||
      bitmap.size() < dirty_bitmap_words(range.pages)) {
    throw Error("KVM_CLEAR_DIRTY_LOG", "a range KVM would refuse")
        .with("slot", std::to_string(slot.slot))
        .with("first_page", std::to_string(range.first_page))
        .with("pages", std::to_string(range.pages));
  }
  kvm_clear_dirty_log log{};
  log.slot = slot.slot;
  log.num_pages = range.pages;
  log.first_page = range.first_page;
  // Kernel contract: the kernel only reads the bitmap (copy_from_user).
  log.dirty_bitmap = const_cast<std::uint64_t*>(bitmap.data());
  const int rc = try_ioctl(fd_.get(), uapi::kClearDirtyLog, &log);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kClearDirtyLog.name)
        .with("slot", std::to_string(slot.slot))
        .with("first_page", std::to_string(range.first_page))
        .with("pages", std::to_string(range.pages))
        .hint(rc == -EINVAL ? "enable KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 first" : "");
  }
}

// ---- end of dirty tracking ----

}  // namespace vfiokit::kvm
