#include "vfiokit/vmm/passthrough.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <algorithm>
#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
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
  std::optional<pci::PcieCapability> pcie;
  std::uint8_t pin = 0;         // as vfio-pci shows it, when VFIO offers INTx
  std::optional<IntxPin> intx;  // where the pin goes
  std::map<std::uint32_t, std::uint8_t> capability_links;
};

namespace {

// The capability list with the capabilities at `hidden` left out: for each pointer byte the
// guest follows (PCI_CAPABILITY_LIST, then each visible capability's next), what it reads. A
// list that loops or leaves the header's 256 bytes ends where it does.
std::map<std::uint32_t, std::uint8_t> capability_links(std::span<const std::uint8_t> config,
                                                       const std::vector<std::uint32_t>& hidden) {
  std::map<std::uint32_t, std::uint8_t> links;
  std::uint32_t pointer = PCI_CAPABILITY_LIST;
  std::uint32_t at = config[PCI_CAPABILITY_LIST] & 0xfcu;
  for (unsigned steps = 0; at >= PCI_STD_HEADER_SIZEOF && at < pci::kLegacyConfigSize && steps < 48;
       ++steps) {
    if (std::find(hidden.begin(), hidden.end(), at) == hidden.end()) {
      links[pointer] = static_cast<std::uint8_t>(at);
      pointer = at + PCI_CAP_LIST_NEXT;
    }
    at = config[at + PCI_CAP_LIST_NEXT] & 0xfcu;
  }
  links[pointer] = 0;
  return links;
}

}  // namespace

PassthroughDevice::Survey PassthroughDevice::survey(const vfio::DeviceAccess& device,
                                                    const BarWindows& windows,
                                                    const InterruptOptions& options) {
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
  Survey survey{facts.msi,    facts.msix, assign_bars(specs, windows), facts.pcie, 0,
                std::nullopt, {}};
  // vfio-pci shows pin 0 where it will not do INTx (no IRQ, nointxmask...), and VFIO reports
  // the INTx index with no vectors then.
  const std::uint8_t pin = config[PCI_INTERRUPT_PIN];
  const auto gsi = intx_gsi(options.slot, pin);
  if (gsi && device.irq_info(VFIO_PCI_INTX_IRQ_INDEX).count > 0) {
    survey.pin = pin;
    survey.intx = IntxPin{*gsi, options.intx_only};
  }
  if (options.intx_only) {
    if (!survey.intx) {
      throw Error("passthrough", device.bdf().to_string() + " has no INTx pin that VFIO offers")
          .with("bdf", device.bdf().to_string())
          .hint("leave out --interrupts intx: the device interrupts by MSI or MSI-X only");
    }
    std::vector<std::uint32_t> hidden;
    if (survey.msi) hidden.push_back(survey.msi->offset);
    if (survey.msix) hidden.push_back(survey.msix->offset);
    survey.msi.reset();
    survey.msix.reset();
    if (!hidden.empty()) survey.capability_links = capability_links(config, hidden);
  }
  return survey;
}

PassthroughDevice::PassthroughDevice(const vfio::DeviceAccess& device, kvm::GuestMemoryMap& memory,
                                     msix::RouteTable& routes, const BarWindows& windows,
                                     const InterruptOptions& interrupt_options)
    : PassthroughDevice(device, memory, routes, survey(device, windows, interrupt_options)) {}

PassthroughDevice::PassthroughDevice(const vfio::DeviceAccess& device, kvm::GuestMemoryMap& memory,
                                     msix::RouteTable& routes, Survey survey)
    : device_(device),
      registers_(std::move(survey.bars)),
      pcie_(survey.pcie),
      capability_links_(std::move(survey.capability_links)) {
  interrupts_.emplace(device, routes, survey.msi, survey.msix, survey.intx);
  if (const auto gsi = interrupts_->intx_gsi()) {
    interrupt_pin_ = survey.pin;
    interrupt_line_ = static_cast<std::uint8_t>(*gsi);
  }
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
    log::warn("could not turn off bus mastering: {}", e.what());
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
  if (offset == PCI_INTERRUPT_PIN) return Owner::intx;
  if (offset == PCI_INTERRUPT_LINE && interrupt_pin_ != 0) return Owner::intx;
  if (capability_links_.count(offset)) return Owner::links;
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
      case Owner::intx:
        bytes[i] = at == PCI_INTERRUPT_PIN ? interrupt_pin_ : interrupt_line_;
        break;
      case Owner::links:
        bytes[i] = capability_links_.at(at);
        break;
      case Owner::device:
        // The status register says whether there is a capability list; none may be left.
        if (at == PCI_STATUS && capability_links_.count(PCI_CAPABILITY_LIST) &&
            capability_links_.at(PCI_CAPABILITY_LIST) == 0) {
          bytes[i] = static_cast<std::uint8_t>(bytes[i] & ~PCI_STATUS_CAP_LIST);
        }
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

bool PassthroughDevice::requests_flr(std::uint32_t offset,
                                     std::span<const std::uint8_t> bytes) const {
  if (!pcie_ || !pcie_->function_level_reset) return false;
  const std::uint32_t control_high = pcie_->offset + std::uint32_t{PCI_EXP_DEVCTL} + 1;
  return offset <= control_high && control_high < offset + bytes.size() &&
         (bytes[control_high - offset] & (PCI_EXP_DEVCTL_BCR_FLR >> 8)) != 0;
}

void PassthroughDevice::function_level_reset() {
  log::debug("guest resets the function (FLR)");
  // The device stops signalling through VFIO before it resets, the emulated state follows the
  // reset, then the command register reads as after one (decoding, bus mastering and Interrupt
  // Disable off): the kernel restores what it saved around VFIO_DEVICE_RESET.
  interrupts_->unwire();
  device_.reset();
  interrupts_->reset();
  device_.config_write16(PCI_COMMAND, 0);
  read_command();
}

void PassthroughDevice::config_write(std::uint32_t offset, std::uint32_t size,
                                     std::uint32_t value) {
  if (!valid_config_access(offset, size)) return;
  std::uint8_t storage[4];
  std::memcpy(storage, &value, 4);
  const std::span<const std::uint8_t> bytes(storage, size);
  if (requests_flr(offset, bytes)) {
    // Initiate Function Level Reset is the VMM's to do (it reads 0); the rest of Device
    // Control, and of the write, reaches the device first.
    const std::uint32_t control_high = pcie_->offset + std::uint32_t{PCI_EXP_DEVCTL} + 1;
    storage[control_high - offset] =
        static_cast<std::uint8_t>(storage[control_high - offset] & ~(PCI_EXP_DEVCTL_BCR_FLR >> 8));
    write_through(offset, bytes);
    function_level_reset();
    return;
  }
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
      log::debug("guest moves BAR{} from {} to {}", move->index, hex(move->from), hex(move->to));
      mapping(move->index).place(move->to);
    }
  }
  // Kernel contract: Interrupt Disable (PCI_COMMAND_INTX_DISABLE) went to vfio-pci above, which
  // keeps it virtual and masks INTx while it is set (vfio_pci_intx_mask), so the line stays
  // quiet whatever the resampling irqfd unmasks.
  if (offset <= PCI_COMMAND && offset + size > PCI_COMMAND) read_command();
  for (std::uint32_t i = 0; i < size; ++i) {
    // Interrupt Line is the guest's to write (firmware's note for the OS); the pin is read-only.
    if (offset + i == PCI_INTERRUPT_LINE && owner(PCI_INTERRUPT_LINE) == Owner::intx) {
      interrupt_line_ = bytes[i];
    }
  }
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
