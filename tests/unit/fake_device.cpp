#include "tests/unit/fake_device.h"

#include <linux/vfio.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/vfio/device.h"

namespace vfiokit::test {
namespace {

constexpr std::uint64_t kPage = 4096;

std::uint64_t little_endian(std::span<const std::uint8_t> bytes) {
  std::uint64_t value = 0;
  std::memcpy(&value, bytes.data(), std::min(bytes.size(), sizeof value));
  return value;
}

// INTx, MSI and MSI-X: vfio-pci has one of them on at a time.
bool is_interrupt(std::uint32_t index) {
  return index == VFIO_PCI_INTX_IRQ_INDEX || index == VFIO_PCI_MSI_IRQ_INDEX ||
         index == VFIO_PCI_MSIX_IRQ_INDEX;
}

}  // namespace

bool signalled(int eventfd) {
  pollfd fd{eventfd, POLLIN, 0};
  return ::poll(&fd, 1, 0) == 1 && (fd.revents & POLLIN) != 0;
}

// ---- FakeDevice ----------------------------------------------------------------------------

FakeDevice::FakeDevice(std::vector<std::uint8_t> config, Journal* journal)
    : config_(std::move(config)), journal_(journal) {
  if (config_.size() < 256) config_.resize(256);
}

void FakeDevice::note(std::string line) const {
  if (journal_) journal_->push_back(std::move(line));
}

void FakeDevice::add_bar(std::uint32_t index, std::uint64_t size,
                         std::optional<std::vector<vfio::SparseArea>> mappable) {
  Bar bar;
  bar.info.index = index;
  bar.info.size = size;
  bar.info.offset = std::uint64_t{index} << 40;  // as vfio-pci places regions in the fd
  bar.info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  if (!mappable || !mappable->empty()) bar.info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
  if (mappable && !mappable->empty()) bar.info.sparse_areas = *mappable;
  const std::uint64_t backing = (size + kPage - 1) & ~(kPage - 1);
  bar.memory = UniqueFd(::memfd_create("fake-bar", MFD_CLOEXEC));
  if (!bar.memory || ::ftruncate(bar.memory.get(), static_cast<off_t>(backing)) != 0) {
    throw Error::from_last_errno("fake BAR memory");
  }
  void* view = ::mmap(nullptr, backing, PROT_READ | PROT_WRITE, MAP_SHARED, bar.memory.get(), 0);
  if (view == MAP_FAILED) throw Error::from_last_errno("fake BAR memory");
  bar.view = MappedMemory(view, backing);
  bars_[index] = std::move(bar);
}

void FakeDevice::add_io_bar(std::uint32_t index, std::uint64_t size) {
  add_bar(index, size, std::vector<vfio::SparseArea>{});
}

void FakeDevice::add_irq(std::uint32_t index, std::uint32_t count, std::uint32_t flags) {
  irqs_[index] = {{index, flags, count}, std::vector<int>(count, -1), 0};
}

const FakeDevice::Bar& FakeDevice::bar(std::uint32_t index) const {
  const auto it = bars_.find(index);
  if (it == bars_.end()) throw Error("fake device", "no BAR" + std::to_string(index));
  return it->second;
}

std::span<std::uint8_t> FakeDevice::bar_memory(std::uint32_t index) const {
  const Bar& b = bar(index);
  return b.view.bytes().first(b.info.size);
}

vfio::RegionInfo FakeDevice::region_info(std::uint32_t index) const {
  const auto it = bars_.find(index);
  if (it != bars_.end()) return it->second.info;
  vfio::RegionInfo none;
  none.index = index;
  if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
    none.size = config_.size();
    none.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  }
  return none;
}

vfio::IrqInfo FakeDevice::irq_info(std::uint32_t index) const {
  const auto it = irqs_.find(index);
  if (it == irqs_.end()) return {index, 0, 0};
  return it->second.info;
}

void FakeDevice::config_read(std::uint64_t offset, std::span<std::uint8_t> out) const {
  if (offset > config_.size() || out.size() > config_.size() - offset) {
    throw Error("read region", "past the end of config").with("offset", hex(offset));
  }
  std::memcpy(out.data(), config_.data() + offset, out.size());
}

void FakeDevice::config_write(std::uint64_t offset, std::span<const std::uint8_t> in) const {
  if (offset > config_.size() || in.size() > config_.size() - offset) {
    throw Error("write region", "past the end of config").with("offset", hex(offset));
  }
  // vfio-pci keeps its own (virtualized) copy; the fake's bytes are plain memory.
  std::memcpy(config_.data() + offset, in.data(), in.size());
  accesses.push_back({VFIO_PCI_CONFIG_REGION_INDEX, offset, in.size(), true, little_endian(in)});
  note("config write " + hex(offset) + "/" + std::to_string(in.size()) + " " +
       hex(little_endian(in)));
}

void FakeDevice::region_read(const vfio::RegionInfo& region, std::uint64_t offset,
                             std::span<std::uint8_t> out) const {
  const Bar& b = bar(region.index);
  if (offset > b.info.size || out.size() > b.info.size - offset) {
    throw Error("read region", "past the end of " + vfio::region_name(region.index));
  }
  std::memcpy(out.data(), b.view.bytes().data() + offset, out.size());
  accesses.push_back({region.index, offset, out.size(), false, little_endian(out)});
}

void FakeDevice::region_write(const vfio::RegionInfo& region, std::uint64_t offset,
                              std::span<const std::uint8_t> in) const {
  const Bar& b = bar(region.index);
  if (offset > b.info.size || in.size() > b.info.size - offset) {
    throw Error("write region", "past the end of " + vfio::region_name(region.index));
  }
  std::memcpy(b.view.bytes().data() + offset, in.data(), in.size());
  accesses.push_back({region.index, offset, in.size(), true, little_endian(in)});
}

MappedMemory FakeDevice::map_region(const vfio::RegionInfo& region, std::uint64_t offset,
                                    std::uint64_t size) const {
  const Bar& b = bar(region.index);
  if (refuse_mmap) throw Error::from_errno(EINVAL, "map region", "refused by the fake");
  if (offset % kPage || offset > b.view.size() || size > b.view.size() - offset || size == 0) {
    throw Error::from_errno(EINVAL, "map region", "outside the region");
  }
  void* address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, b.memory.get(),
                         static_cast<off_t>(offset));
  if (address == MAP_FAILED) throw Error::from_last_errno("map region");
  note("mmap " + vfio::region_name(region.index) + " " + hex(offset) + "+" + hex(size));
  return MappedMemory(address, size);
}

void FakeDevice::set_irqs(std::span<const std::uint8_t> bytes) const {
  vfio_irq_set header{};
  if (bytes.size() < sizeof header) throw Error::from_errno(EINVAL, "VFIO_DEVICE_SET_IRQS");
  std::memcpy(&header, bytes.data(), sizeof header);
  IrqSet set{header.index, header.flags, header.start, header.count, {}};
  const std::uint32_t data = header.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  const std::uint32_t action = header.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
    for (std::uint32_t i = 0; i < header.count; ++i) {
      std::int32_t fd = -1;
      std::memcpy(&fd, bytes.data() + sizeof header + 4 * i, 4);
      set.eventfds.push_back(fd);
    }
  }
  const auto it = irqs_.find(header.index);
  if (it == irqs_.end() || header.start > it->second.info.count ||
      header.count > it->second.info.count - header.start) {
    throw Error::from_errno(EINVAL, "VFIO_DEVICE_SET_IRQS", "vectors out of range");
  }
  Irq& irq = it->second;
  const std::string name = vfio::irq_index_name(header.index);
  if (action == VFIO_IRQ_SET_ACTION_TRIGGER && data == VFIO_IRQ_SET_DATA_NONE &&
      header.count == 0) {
    irq.eventfds.assign(irq.info.count, -1);
    irq.enabled = 0;
    note("SET_IRQS " + name + " off");
  } else if (action == VFIO_IRQ_SET_ACTION_TRIGGER && data == VFIO_IRQ_SET_DATA_EVENTFD) {
    for (const auto& [index, other] : irqs_) {
      const bool other_on =
          std::any_of(other.eventfds.begin(), other.eventfds.end(), [](int fd) { return fd >= 0; });
      if (index != header.index && is_interrupt(index) && is_interrupt(header.index) && other_on) {
        throw Error::from_errno(EINVAL, "VFIO_DEVICE_SET_IRQS",
                                vfio::irq_index_name(index) + " is on");
      }
    }
    const bool on = irq.enabled > 0;
    if (on && header.start + header.count > irq.enabled && irq.info.noresize()) {
      throw Error::from_errno(EINVAL, "VFIO_DEVICE_SET_IRQS",
                              "past the vectors enabled, which cannot grow (NORESIZE)");
    }
    irq.enabled = std::max(irq.enabled, header.start + header.count);
    for (std::uint32_t i = 0; i < header.count; ++i) {
      irq.eventfds[header.start + i] = set.eventfds[i];
    }
    note("SET_IRQS " + name + " " + std::to_string(header.start) + "+" +
         std::to_string(header.count) + " eventfds");
  } else if (action == VFIO_IRQ_SET_ACTION_TRIGGER) {
    for (std::uint32_t v = header.start; v < header.start + header.count; ++v)
      fire(header.index, v);
    note("SET_IRQS " + name + " loopback");
  } else {
    note("SET_IRQS " + name + (action == VFIO_IRQ_SET_ACTION_MASK ? " mask" : " unmask"));
  }
  irq_sets.push_back(std::move(set));
}

void FakeDevice::reset() const {
  ++resets;
  note("reset");
}

bool FakeDevice::fire(std::uint32_t index, std::uint32_t vector) const {
  const auto it = irqs_.find(index);
  if (it == irqs_.end() || vector >= it->second.eventfds.size()) return false;
  const int fd = it->second.eventfds[vector];
  if (fd < 0) return false;
  const std::uint64_t one = 1;
  return ::write(fd, &one, sizeof one) == sizeof one;
}

std::vector<int> FakeDevice::eventfds(std::uint32_t index) const {
  const auto it = irqs_.find(index);
  return it == irqs_.end() ? std::vector<int>{} : it->second.eventfds;
}

// ---- FakeVm --------------------------------------------------------------------------------

FakeVm::FakeVm(Journal* journal, std::uint32_t slot_limit)
    : slots_(slot_limit), journal_(journal) {}

void FakeVm::note(std::string line) const {
  if (journal_) journal_->push_back(std::move(line));
}

std::uint32_t FakeVm::map_memory(std::uint64_t guest_address, std::span<std::uint8_t> host) {
  for (const auto& [start, end] : refused) {
    if (guest_address < end && start < guest_address + host.size()) {
      throw Error::from_errno(EEXIST, "KVM_SET_USER_MEMORY_REGION", "refused by the fake VM")
          .with("guest_address", hex(guest_address));
    }
  }
  const std::uint32_t slot = slots_.free_slot();
  slots_.add({slot, guest_address, host.size(), reinterpret_cast<std::uintptr_t>(host.data()), 0});
  hosts_[slot] = host;
  note("slot " + std::to_string(slot) + " at " + hex(guest_address) + "+" + hex(host.size()));
  return slot;
}

void FakeVm::unmap_memory(std::uint32_t slot) {
  slots_.remove(slot);
  hosts_.erase(slot);
  note("slot " + std::to_string(slot) + " removed");
}

std::span<std::uint8_t> FakeVm::guest_memory(std::uint64_t address, std::size_t size) const {
  const kvm::MemorySlot* slot = slots_.containing(address);
  if (!slot || address - slot->guest_address + size > slot->size) return {};
  return hosts_.at(slot->slot).subspan(address - slot->guest_address, size);
}

void FakeVm::set_gsi_routing(std::span<const msix::RouteEntry> entries) {
  routes.assign(entries.begin(), entries.end());
  ++routing_commits;
  note("routing " + std::to_string(entries.size()) + " routes");
}

void FakeVm::assign_irqfd(int eventfd, std::uint32_t gsi) {
  if (!irqfds.emplace(eventfd, gsi).second) throw Error::from_errno(EBUSY, "KVM_IRQFD");
  note("irqfd gsi " + std::to_string(gsi) + " on");
}

void FakeVm::assign_resample_irqfd(int eventfd, int resamplefd, std::uint32_t gsi) {
  if (gsi >= msix::kFirstMsiGsi) throw Error::from_errno(EINVAL, "KVM_IRQFD (resample)");
  if (!irqfds.emplace(eventfd, gsi).second) throw Error::from_errno(EBUSY, "KVM_IRQFD");
  resamplefds[eventfd] = resamplefd;
  note("irqfd gsi " + std::to_string(gsi) + " on, resampled");
}

void FakeVm::deassign_irqfd(int eventfd, std::uint32_t gsi) {
  const auto it = irqfds.find(eventfd);
  if (it == irqfds.end() || it->second != gsi) {
    throw Error::from_errno(ENOENT, "KVM_IRQFD (deassign)");
  }
  irqfds.erase(it);
  resamplefds.erase(eventfd);
  note("irqfd gsi " + std::to_string(gsi) + " off");
}

void FakeVm::signal_msi(const msix::MsiMessage& message) {
  note("MSI " + hex(message.address) + " " + hex(message.data));
}

std::optional<msix::MsiMessage> FakeVm::delivers(int eventfd) const {
  const auto it = irqfds.find(eventfd);
  if (it == irqfds.end()) return std::nullopt;
  for (const auto& route : routes) {
    if (route.gsi != it->second) continue;
    if (const auto* msi = std::get_if<msix::MsiMessage>(&route.target)) return *msi;
  }
  return std::nullopt;
}

}  // namespace vfiokit::test
