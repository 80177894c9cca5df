#include "vfiokit/vmm/passthrough.h"

#include <linux/pci_regs.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::vmm {
namespace {

// What configuration mechanism #1 can express: 1, 2 or 4 bytes inside one dword of the first
// 256.
bool valid_config_access(std::uint32_t offset, std::uint32_t size) noexcept {
  return (size == 1 || size == 2 || size == 4) && offset % 4 + size <= 4 &&
         offset + size <= pci::kLegacyConfigSize;
}

}  // namespace

struct PassthroughDevice::Survey {
  std::optional<pci::MsiCapability> msi;
  std::optional<pci::MsixCapability> msix;
  std::vector<GuestBar> bars;
};

PassthroughDevice::Survey PassthroughDevice::survey(const vfio::DeviceAccess& device,
                                                    const BarWindows& windows) {
  std::vector<std::uint8_t> config(pci::kLegacyConfigSize);
  device.config_read(0, config);
  const pci::ConfigFacts facts = pci::parse_config_facts(config);
  // A region VFIO reports with a size is a BAR; its register says what kind (one reading zero
  // is a 32-bit non-prefetchable BAR at address 0, e.g. after a reset).
  const std::vector<pci::BarRegister> registers = pci::decode_bar_registers(config);
  std::vector<BarSpec> specs;
  for (unsigned index = 0; index < 6; ++index) {
    const vfio::RegionInfo info = device.region_info(index);
    if (info.size == 0) continue;  // unimplemented, or the upper half of a 64-bit BAR
    const auto reg = std::find_if(registers.begin(), registers.end(),
                                  [index](const pci::BarRegister& r) { return r.index == index; });
    BarSpec spec{index, pci::BarKind::mem32, false, info.size};
    if (reg != registers.end()) {
      spec.kind = reg->kind;
      spec.prefetchable = reg->prefetchable;
    }
    specs.push_back(spec);
  }
  return {facts.msi, facts.msix, assign_bars(specs, windows)};
}

PassthroughDevice::PassthroughDevice(const vfio::DeviceAccess& device, kvm::GuestMemoryMap& memory,
                                     msix::RouteTable& routes, const BarWindows& windows)
    : PassthroughDevice(device, memory, routes, survey(device, windows)) {}

PassthroughDevice::PassthroughDevice(const vfio::DeviceAccess& device, kvm::GuestMemoryMap& memory,
                                     msix::RouteTable& routes, Survey survey)
    : device_(device), registers_(std::move(survey.bars)) {
  interrupts_.emplace(device, routes, survey.msi, survey.msix);
  // Should this throw, the members built so far undo themselves: no slot outlives its mapping.
  for (const GuestBar& bar : registers_.bars()) {
    mappings_.push_back(std::make_unique<BarMapping>(
        device, bar.spec, interrupts_->trapped_pages(bar.spec.index), memory));
    // The slots are made now, whatever the Memory Space bit says: adding them later, when the
    // guest turns decoding on, sometimes left the guest hung on its next BAR access in the
    // rig's nested KVM. While decoding is off vfio-pci revokes the mmap, so a guest touching a
    // mapped page then ends the run with EFAULT from KVM_RUN: a guest bug, reported clearly.
    mappings_.back()->place(bar.address);
  }
  read_command();
}

PassthroughDevice::~PassthroughDevice() {
  interrupts_.reset();
  // The guest may have left the device running (an NVMe keeps fetching from its queues): stop
  // its DMA before the VMM unmaps guest RAM from the IOMMU, or it faults there.
  try {
    const std::uint16_t command = device_.config_read16(PCI_COMMAND);
    device_.config_write16(PCI_COMMAND, static_cast<std::uint16_t>(command & ~PCI_COMMAND_MASTER));
  } catch (const Error& e) {
    spdlog::warn("could not turn off bus mastering: {}", e.what());
  }
  mappings_.clear();
}

BarMapping& PassthroughDevice::mapping(unsigned index) const {
  const auto& bars = registers_.bars();
  for (std::size_t i = 0; i < bars.size(); ++i) {
    if (bars[i].spec.index == index) return *mappings_[i];
  }
  throw Error("passthrough", "no BAR" + std::to_string(index));
}

std::size_t PassthroughDevice::memory_slots() const noexcept {
  std::size_t slots = 0;
  for (const auto& m : mappings_) slots += m->slots().size();
  return slots;
}

std::vector<std::string> PassthroughDevice::describe() const {
  std::vector<std::string> lines;
  const auto& bars = registers_.bars();
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const GuestBar& g = bars[i];
    std::string line = "BAR" + std::to_string(g.spec.index) + " " + human_size(g.spec.size) + " " +
                       std::string(pci::to_string(g.spec.kind)) + " at " + hex(g.address);
    if (g.spec.kind == pci::BarKind::io) {
      line += " (trapped)";
    } else {
      const std::uint64_t mapped = mappings_[i]->mapped_bytes();
      line += " (" + human_size(mapped) + " mapped into the guest, " +
              human_size(g.spec.size - std::min(g.spec.size, mapped)) + " trapped)";
    }
    lines.push_back(line);
  }
  return lines;
}

// ---- Config space ------------------------------------------------------------------------

PassthroughDevice::Owner PassthroughDevice::owner(std::uint32_t offset) const noexcept {
  if (BarRegisters::covers(offset)) return Owner::bars;
  if (offset >= PCI_ROM_ADDRESS && offset < PCI_ROM_ADDRESS + 4) return Owner::hidden;
  if (offset == PCI_INTERRUPT_PIN) return Owner::hidden;  // no INTx in this VMM: reads 0, "none"
  if (interrupts_->owns_config(offset)) return Owner::interrupts;
  return Owner::device;
}

void PassthroughDevice::read_command() {
  const std::uint16_t command = device_.config_read16(PCI_COMMAND);
  memory_decoding_ = (command & PCI_COMMAND_MEMORY) != 0;
  io_decoding_ = (command & PCI_COMMAND_IO) != 0;
}

std::uint32_t PassthroughDevice::config_read(std::uint32_t offset, std::uint32_t size) {
  if (!valid_config_access(offset, size)) return 0xffffffffu;
  std::uint8_t bytes[4] = {};
  device_.config_read(offset, {bytes, size});  // what vfio-pci shows, then overlay ours
  for (std::uint32_t i = 0; i < size; ++i) {
    const std::uint32_t at = offset + i;
    switch (owner(at)) {
      case Owner::bars:
        bytes[i] = registers_.read_byte(at);
        break;
      case Owner::hidden:
        bytes[i] = 0;
        break;
      case Owner::interrupts:
        bytes[i] = interrupts_->read_config(at);
        break;
      case Owner::device:
        break;
    }
  }
  std::uint32_t value = 0;
  std::memcpy(&value, bytes, size);
  return value;
}

void PassthroughDevice::write_through(std::uint32_t offset, std::span<const std::uint8_t> bytes) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    if (owner(offset + static_cast<std::uint32_t>(i)) != Owner::device) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < bytes.size() && owner(offset + static_cast<std::uint32_t>(end)) == Owner::device) {
      ++end;
    }
    // A run of the device's bytes, in naturally aligned pieces (one, where the guest's whole
    // access is the device's).
    while (i < end) {
      std::size_t width = 4;
      while (width > 1 && ((offset + i) % width != 0 || i + width > end)) width /= 2;
      device_.config_write(offset + i, bytes.subspan(i, width));
      i += width;
    }
  }
}

void PassthroughDevice::config_write(std::uint32_t offset, std::uint32_t size,
                                     std::uint32_t value) {
  if (!valid_config_access(offset, size)) return;
  std::uint8_t storage[4];
  std::memcpy(storage, &value, 4);
  const std::span<const std::uint8_t> bytes(storage, size);
  write_through(offset, bytes);
  bool bars = false, interrupts = false;
  for (std::uint32_t i = 0; i < size; ++i) {
    const Owner o = owner(offset + i);
    bars |= o == Owner::bars;
    interrupts |= o == Owner::interrupts;
  }
  if (bars) {
    if (const auto move = registers_.write(offset, bytes)) {
      // The guest moved the BAR: its slots follow it.
      spdlog::debug("guest moves BAR{} from {} to {}", move->index, hex(move->from), hex(move->to));
      mapping(move->index).place(move->to);
    }
  }
  if (offset <= PCI_COMMAND && offset + size > PCI_COMMAND) read_command();
  if (interrupts) interrupts_->write_config(offset, bytes);
}

// ---- Trapped accesses --------------------------------------------------------------------

bool PassthroughDevice::mmio(const kvm::MmioExit& exit, std::span<std::uint8_t> data) {
  const auto hit = registers_.memory_at(exit.address);
  if (!hit) return false;
  if (!memory_decoding_) {  // the device does not answer: reads float high
    if (!exit.write) std::memset(data.data(), 0xff, data.size());
    return true;
  }
  if (interrupts_->mmio(hit->index, hit->offset, exit.write, data)) return true;
  const BarMapping& bar = mapping(hit->index);
  if (exit.write) {
    bar.write(hit->offset, data);
  } else {
    bar.read(hit->offset, data);
  }
  return true;
}

bool PassthroughDevice::io(const kvm::IoExit& exit, std::span<std::uint8_t> data) {
  const auto hit = registers_.io_at(exit.port);
  if (!hit) return false;
  const BarMapping& bar = mapping(hit->index);
  for (std::uint32_t i = 0; i < exit.count; ++i) {
    const std::size_t at = std::size_t{i} * exit.size;
    if (at + exit.size > data.size()) break;
    const auto item = data.subspan(at, exit.size);
    if (!io_decoding_) {
      if (!exit.out) std::memset(item.data(), 0xff, item.size());
    } else if (exit.out) {
      bar.write(hit->offset, item);
    } else {
      bar.read(hit->offset, item);
    }
  }
  return true;
}

}  // namespace vfiokit::vmm
