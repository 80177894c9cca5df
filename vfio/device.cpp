#include "vfiokit/vfio/device.h"

#include <linux/pci_regs.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/vfio/uapi.h"

namespace vfiokit::vfio {
namespace {

Error device_error(Error e, const pci::Bdf& bdf) {
  return std::move(e.with("bdf", bdf.to_string()));
}

}  // namespace

bool DeviceInfo::resettable() const noexcept { return flags & VFIO_DEVICE_FLAGS_RESET; }
bool DeviceInfo::is_pci() const noexcept { return flags & VFIO_DEVICE_FLAGS_PCI; }

bool IrqInfo::eventfd() const noexcept { return flags & VFIO_IRQ_INFO_EVENTFD; }
bool IrqInfo::maskable() const noexcept { return flags & VFIO_IRQ_INFO_MASKABLE; }
bool IrqInfo::automasked() const noexcept { return flags & VFIO_IRQ_INFO_AUTOMASKED; }
bool IrqInfo::noresize() const noexcept { return flags & VFIO_IRQ_INFO_NORESIZE; }

std::string IrqInfo::flags_text() const {
  std::vector<std::string> words;
  if (eventfd()) words.emplace_back("eventfd");
  if (maskable()) words.emplace_back("maskable");
  if (automasked()) words.emplace_back("automasked");
  if (noresize()) words.emplace_back("noresize");
  return words.empty() ? "-" : join(words, " ");
}

std::string irq_index_name(std::uint32_t index) {
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      return "INTx";
    case VFIO_PCI_MSI_IRQ_INDEX:
      return "MSI";
    case VFIO_PCI_MSIX_IRQ_INDEX:
      return "MSI-X";
    case VFIO_PCI_ERR_IRQ_INDEX:
      return "ERR";
    case VFIO_PCI_REQ_IRQ_INDEX:
      return "REQ";
    default:
      return "IRQ " + std::to_string(index);
  }
}

VfioDevice::VfioDevice(UniqueFd fd, const pci::Bdf& bdf) : fd_(std::move(fd)), bdf_(bdf) {
  vfio_device_info info{};
  info.argsz = sizeof info;
  try {
    do_ioctl(fd_.get(), uapi::kDeviceGetInfo, &info);
  } catch (Error& e) {
    throw device_error(std::move(e), bdf_);
  }
  info_ = {info.flags, info.num_regions, info.num_irqs};
  if (!info_.is_pci()) {
    throw Error("open device", "not a vfio-pci device").with("bdf", bdf_.to_string());
  }
  config_ = region_info(VFIO_PCI_CONFIG_REGION_INDEX);
}

RegionInfo VfioDevice::region_info(std::uint32_t index) const {
  std::vector<std::uint8_t> buffer(sizeof(vfio_region_info));
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto* info = reinterpret_cast<vfio_region_info*>(buffer.data());
    info->argsz = static_cast<std::uint32_t>(buffer.size());
    info->index = index;
    const int rc = try_ioctl(fd_.get(), uapi::kDeviceGetRegionInfo, info);
    if (rc < 0) {
      throw ioctl_error(rc, uapi::kDeviceGetRegionInfo.name)
          .with("bdf", bdf_.to_string())
          .with("region", std::to_string(index));
    }
    if (info->argsz <= buffer.size()) break;
    buffer.assign(info->argsz, 0);  // capabilities did not fit; ask again with room
  }
  return parse_region_info(buffer);
}

IrqInfo VfioDevice::irq_info(std::uint32_t index) const {
  vfio_irq_info info{};
  info.argsz = sizeof info;
  info.index = index;
  const int rc = try_ioctl(fd_.get(), uapi::kDeviceGetIrqInfo, &info);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kDeviceGetIrqInfo.name)
        .with("bdf", bdf_.to_string())
        .with("irq_index", irq_index_name(index));
  }
  return {info.index, info.flags, info.count};
}

void VfioDevice::region_read(const RegionInfo& region, std::uint64_t offset,
                             std::span<std::uint8_t> out) const {
  if (offset > region.size || out.size() > region.size - offset) {
    throw Error("read region", "past the end of " + region_name(region.index))
        .with("bdf", bdf_.to_string())
        .with("offset", hex(offset))
        .with("size", std::to_string(out.size()));
  }
  const ssize_t n =
      ::pread(fd_.get(), out.data(), out.size(), static_cast<off_t>(region.offset + offset));
  if (n != static_cast<ssize_t>(out.size())) {
    const int err = n < 0 ? errno : EIO;
    throw Error::from_errno(err, "read region", n >= 0 ? "short read" : "")
        .with("bdf", bdf_.to_string())
        .with("region", region_name(region.index))
        .with("offset", hex(offset));
  }
}

void VfioDevice::region_write(const RegionInfo& region, std::uint64_t offset,
                              std::span<const std::uint8_t> in) const {
  if (offset > region.size || in.size() > region.size - offset) {
    throw Error("write region", "past the end of " + region_name(region.index))
        .with("bdf", bdf_.to_string())
        .with("offset", hex(offset))
        .with("size", std::to_string(in.size()));
  }
  const ssize_t n =
      ::pwrite(fd_.get(), in.data(), in.size(), static_cast<off_t>(region.offset + offset));
  if (n != static_cast<ssize_t>(in.size())) {
    const int err = n < 0 ? errno : EIO;
    throw Error::from_errno(err, "write region", n >= 0 ? "short write" : "")
        .with("bdf", bdf_.to_string())
        .with("region", region_name(region.index))
        .with("offset", hex(offset));
  }
}

void VfioDevice::config_read(std::uint64_t offset, std::span<std::uint8_t> out) const {
  region_read(config_, offset, out);
}

void VfioDevice::config_write(std::uint64_t offset, std::span<const std::uint8_t> in) const {
  region_write(config_, offset, in);
}

MappedMemory VfioDevice::map_region(const RegionInfo& region, std::uint64_t offset,
                                    std::uint64_t size) const {
  if (offset > region.size || size > region.size - offset || size == 0) {
    throw Error("map region", "outside " + region_name(region.index))
        .with("bdf", bdf_.to_string())
        .with("offset", hex(offset))
        .with("size", hex(size));
  }
  const int prot = (region.readable() ? PROT_READ : 0) | (region.writable() ? PROT_WRITE : 0);
  void* address = ::mmap(nullptr, size, prot, MAP_SHARED, fd_.get(),
                         static_cast<off_t>(region.offset + offset));
  if (address == MAP_FAILED) {
    throw Error::from_last_errno("map region")
        .with("bdf", bdf_.to_string())
        .with("region", region_name(region.index))
        .with("offset", hex(offset))
        .with("size", hex(size));
  }
  return MappedMemory(address, size);
}

std::uint16_t DeviceAccess::config_read16(std::uint64_t offset) const {
  std::uint8_t bytes[2];
  config_read(offset, bytes);
  return static_cast<std::uint16_t>(bytes[0] | bytes[1] << 8);
}

void DeviceAccess::config_write16(std::uint64_t offset, std::uint16_t value) const {
  const std::uint8_t bytes[2] = {static_cast<std::uint8_t>(value),
                                 static_cast<std::uint8_t>(value >> 8)};
  config_write(offset, bytes);
}

std::uint32_t DeviceAccess::config_read32(std::uint64_t offset) const {
  std::uint8_t bytes[4];
  config_read(offset, bytes);
  return static_cast<std::uint32_t>(bytes[0]) | static_cast<std::uint32_t>(bytes[1]) << 8 |
         static_cast<std::uint32_t>(bytes[2]) << 16 | static_cast<std::uint32_t>(bytes[3]) << 24;
}

void VfioDevice::enable_bus_master() const {
  const std::uint16_t command = config_read16(PCI_COMMAND);
  config_write16(PCI_COMMAND, command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

std::vector<std::uint8_t> VfioDevice::read_rom() const {
  const RegionInfo rom = region_info(VFIO_PCI_ROM_REGION_INDEX);
  if (rom.size == 0 || !rom.readable()) return {};
  std::vector<std::uint8_t> bytes(rom.size);
  region_read(rom, 0, bytes);
  return bytes;
}

void VfioDevice::set_irqs(std::span<const std::uint8_t> irq_set) const {
  const auto* header = reinterpret_cast<const vfio_irq_set*>(irq_set.data());
  const int rc = try_ioctl(fd_.get(), uapi::kDeviceSetIrqs, header);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kDeviceSetIrqs.name)
        .with("bdf", bdf_.to_string())
        .with("irq_index", irq_index_name(header->index))
        .with("start", std::to_string(header->start))
        .with("count", std::to_string(header->count));
  }
}

void VfioDevice::reset() const {
  if (!info_.resettable()) {
    throw Error("VFIO_DEVICE_RESET", "the device offers no reset (no FLR, PM or bus reset)")
        .with("bdf", bdf_.to_string());
  }
  try {
    do_ioctl(fd_.get(), uapi::kDeviceReset);
  } catch (Error& e) {
    throw device_error(std::move(e), bdf_);
  }
}

std::vector<HotResetDependency> parse_hot_reset_info(std::span<const std::uint8_t> reply) {
  // By offset: an object of the header type (its devices[0]) is an extension clang refuses.
  constexpr std::size_t kHeader = sizeof(vfio_pci_hot_reset_info);
  if (reply.size() < kHeader) return {};
  std::uint32_t claimed = 0;
  std::memcpy(&claimed, reply.data() + offsetof(vfio_pci_hot_reset_info, count), sizeof claimed);
  const std::size_t room = (reply.size() - kHeader) / sizeof(vfio_pci_dependent_device);
  const std::size_t count = std::min<std::size_t>(claimed, room);
  std::vector<HotResetDependency> devices;
  devices.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    vfio_pci_dependent_device dep{};
    std::memcpy(&dep, reply.data() + kHeader + i * sizeof dep, sizeof dep);
    devices.push_back(
        {dep.group_id, pci::Bdf{dep.segment, dep.bus, static_cast<std::uint8_t>(dep.devfn >> 3),
                                static_cast<std::uint8_t>(dep.devfn & 7)}});
  }
  return devices;
}

std::vector<HotResetDependency> VfioDevice::hot_reset_dependencies() const {
  std::vector<std::uint8_t> buffer(sizeof(vfio_pci_hot_reset_info) +
                                   4 * sizeof(vfio_pci_dependent_device));
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto* info = reinterpret_cast<vfio_pci_hot_reset_info*>(buffer.data());
    info->argsz = static_cast<std::uint32_t>(buffer.size());
    // Kernel contract: argsz bytes at `info`; on ENOSPC the kernel sets count to what it needs.
    const int rc = try_ioctl(fd_.get(), uapi::kDeviceGetPciHotResetInfo, info);
    if (rc == -ENOSPC) {
      if (info->count > kMaxHotResetDependencies) return {};
      buffer.assign(
          sizeof(vfio_pci_hot_reset_info) + info->count * sizeof(vfio_pci_dependent_device), 0);
      continue;
    }
    if (rc < 0) return {};  // no bus reset possible for this device (ENODEV, EINVAL...)
    return parse_hot_reset_info(buffer);
  }
  return {};  // the set kept growing between calls: nothing reliable to report
}

}  // namespace vfiokit::vfio
