#include "vmm/passthrough.h"

#include <linux/vfio.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/text.h"
#include "pci/device.h"

namespace vfiokit::vmm {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint32_t kBarRegisters = PCI_BASE_ADDRESS_0;
constexpr std::uint32_t kBarRegistersEnd = PCI_BASE_ADDRESS_5 + 4;

std::uint64_t page_down(std::uint64_t v) { return v & ~(kPage - 1); }
std::uint64_t page_up(std::uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

}  // namespace

PassthroughDevice::PassthroughDevice(const vfio::VfioDevice& device, kvm::Vm& vm,
                                     msix::RouteTable& routes, std::uint32_t first_slot,
                                     const BarWindows& windows)
    : device_(device), vm_(vm), routes_(routes), next_slot_(first_slot) {
  std::vector<std::uint8_t> config(pci::kLegacyConfigSize);
  device.config_read(0, config);
  const pci::ConfigFacts facts = pci::parse_config_facts(config);
  msi_cap_ = facts.msi;
  if (msi_cap_) msi_.emplace(*msi_cap_);
  msix_cap_ = facts.msix;
  if (msix_cap_) {
    table_.emplace(msix_cap_->table_size);
    msix_control_.table_size_field = static_cast<std::uint16_t>(msix_cap_->table_size - 1);
  }
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
  const auto layout = assign_bars(specs, windows);
  for (std::size_t i = 0; i < layout.size(); ++i) {
    Bar bar;
    bar.guest = layout[i];
    bar.region = std::make_unique<vfio::Region>(device, layout[i].spec.index);
    bars_.push_back(std::move(bar));
  }
  memory_decoding_ = (device.config_read16(PCI_COMMAND) & PCI_COMMAND_MEMORY) != 0;
  try {
    // The slots are made now, whatever the Memory Space bit says: adding them later, when the
    // guest turns decoding on, sometimes left the guest hung on its next BAR access in the
    // rig's nested KVM. While decoding is off vfio-pci revokes the mmap, so a guest touching a
    // mapped page then ends the run with EFAULT from KVM_RUN: a guest bug, reported clearly.
    for (Bar& bar : bars_) map_bar(bar);
  } catch (...) {
    // No destructor runs for a half-built object: no slot may outlive the mappings it points at.
    for (Bar& bar : bars_) unmap_bar(bar);
    throw;
  }
}

PassthroughDevice::~PassthroughDevice() {
  wiring_.reset();
  // The guest may have left the device running (an NVMe keeps fetching from its queues): stop
  // its DMA before the VMM unmaps guest RAM from the IOMMU, or it faults there.
  try {
    const std::uint16_t command = device_.config_read16(PCI_COMMAND);
    device_.config_write16(PCI_COMMAND, static_cast<std::uint16_t>(command & ~PCI_COMMAND_MASTER));
  } catch (const Error& e) {
    spdlog::warn("could not turn off bus mastering: {}", e.what());
  }
  for (Bar& bar : bars_) unmap_bar(bar);
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> PassthroughDevice::trapped(
    const Bar& bar) const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  if (!msix_cap_) return ranges;
  const unsigned index = bar.guest.spec.index;
  if (msix_cap_->table_bar == index) {
    ranges.push_back({page_down(msix_cap_->table_offset),
                      page_up(msix_cap_->table_offset + msix_cap_->table_bytes())});
  }
  if (msix_cap_->pba_bar == index) {
    ranges.push_back({page_down(msix_cap_->pba_offset),
                      page_up(msix_cap_->pba_offset + msix_cap_->pba_bytes())});
  }
  return ranges;
}

void PassthroughDevice::map_bar(Bar& bar) {
  if (bar.guest.spec.kind == pci::BarKind::io) return;  // port I/O is always trapped
  const auto traps = trapped(bar);
  for (const vfio::SparseArea& area : bar.region->info().mappable_areas()) {
    if (!bar.region->mapped(area.offset, 1)) continue;  // the mmap failed: stays trapped
    // Split the area around the trapped pages; what is left goes to the guest directly.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pieces = {
        {area.offset, area.offset + area.size}};
    for (const auto& [trap_start, trap_end] : traps) {
      std::vector<std::pair<std::uint64_t, std::uint64_t>> next;
      for (const auto& [start, end] : pieces) {
        if (trap_end <= start || trap_start >= end) {
          next.push_back({start, end});
          continue;
        }
        if (start < trap_start) next.push_back({start, trap_start});
        if (trap_end < end) next.push_back({trap_end, end});
      }
      pieces = std::move(next);
    }
    for (const auto& [start, end] : pieces) {
      if (start % kPage || end % kPage || end <= start) continue;
      const auto host = bar.region->mapped_range(start, end - start);
      if (host.empty()) continue;
      const std::uint32_t slot = next_slot_++;
      try {
        vm_.add_memory(slot, bar.guest.address + start, host);
      } catch (const Error& e) {
        spdlog::warn("BAR{} at {} stays trapped: {}", bar.guest.spec.index, hex(bar.guest.address),
                     e.what());
        unmap_bar(bar);
        return;
      }
      bar.slots.push_back(slot);
      bar.mapped_bytes += end - start;
    }
  }
}

void PassthroughDevice::unmap_bar(Bar& bar) noexcept {
  for (std::uint32_t slot : bar.slots) {
    try {
      vm_.remove_memory(slot);
    } catch (const Error& e) {
      spdlog::error("{}", e.what());
    }
  }
  bar.slots.clear();
  bar.mapped_bytes = 0;
}

std::size_t PassthroughDevice::memory_slots() const noexcept {
  std::size_t slots = 0;
  for (const Bar& bar : bars_) slots += bar.slots.size();
  return slots;
}

std::vector<std::string> PassthroughDevice::describe() const {
  std::vector<std::string> lines;
  for (const Bar& bar : bars_) {
    const auto& g = bar.guest;
    std::string line = "BAR" + std::to_string(g.spec.index) + " " + human_size(g.spec.size) + " " +
                       std::string(pci::to_string(g.spec.kind)) + " at " + hex(g.address);
    if (g.spec.kind == pci::BarKind::io) {
      line += " (trapped)";
    } else {
      line += " (" + human_size(bar.mapped_bytes) + " mapped into the guest, " +
              human_size(g.spec.size - std::min(g.spec.size, bar.mapped_bytes)) + " trapped)";
    }
    lines.push_back(line);
  }
  return lines;
}

// ---- Config space ------------------------------------------------------------------------

PassthroughDevice::Owner PassthroughDevice::owner(std::uint32_t offset) const noexcept {
  if (offset >= kBarRegisters && offset < kBarRegistersEnd) return Owner::bar;
  if (offset >= PCI_ROM_ADDRESS && offset < PCI_ROM_ADDRESS + 4) return Owner::hidden;
  if (offset == PCI_INTERRUPT_PIN) return Owner::hidden;  // no INTx in this VMM: reads 0, "none"
  if (msi_ && offset >= msi_cap_->offset && msi_->owns(offset - msi_cap_->offset))
    return Owner::msi;
  if (msix_cap_ && (offset == msix_cap_->offset + 2u || offset == msix_cap_->offset + 3u)) {
    return Owner::msix_control;
  }
  return Owner::device;
}

PassthroughDevice::Bar* PassthroughDevice::bar_for_register(std::uint32_t offset, bool& high) {
  const unsigned slot = (offset - kBarRegisters) / 4;
  for (Bar& bar : bars_) {
    if (bar.guest.spec.index == slot) {
      high = false;
      return &bar;
    }
    if (bar.guest.spec.kind == pci::BarKind::mem64 && bar.guest.spec.index + 1 == slot) {
      high = true;
      return &bar;
    }
  }
  return nullptr;
}

std::uint8_t PassthroughDevice::bar_register_byte(std::uint32_t offset) {
  bool high = false;
  Bar* bar = bar_for_register(offset, high);
  if (!bar) return 0;  // an unimplemented BAR reads as zero
  const BarSpec& spec = bar->guest.spec;
  // While sizing, the half being sized reads as the size mask instead of the address.
  const bool sizing = high ? bar->sizing_high : bar->sizing_low;
  const std::uint64_t shown = sizing ? ~(spec.size - 1) : bar->guest.address;
  const std::uint64_t value =
      pci::encode_bar_register({spec.index, spec.kind, spec.prefetchable, shown});
  return static_cast<std::uint8_t>(value >> (32 * high + 8 * (offset % 4)));
}

void PassthroughDevice::write_bar_register(std::uint32_t register_offset, std::uint32_t value) {
  bool high = false;
  Bar* bar = bar_for_register(register_offset, high);
  if (!bar) return;
  if (value == 0xffffffffu) {  // sizing: the next read returns the size mask
    (high ? bar->sizing_high : bar->sizing_low) = true;
    return;
  }
  (high ? bar->sizing_high : bar->sizing_low) = false;
  const std::uint64_t size_mask = ~(bar->guest.spec.size - 1);
  std::uint64_t address = bar->guest.address;
  if (high) {
    address = (address & 0xffffffffull) | std::uint64_t{value} << 32;
  } else {
    address = (address & ~0xffffffffull) | (value & static_cast<std::uint32_t>(size_mask));
  }
  address &= size_mask;
  if (address == bar->guest.address) return;
  // The guest moved the BAR: its slots follow it.
  spdlog::debug("guest moves BAR{} from {} to {}", bar->guest.spec.index, hex(bar->guest.address),
                hex(address));
  unmap_bar(*bar);
  bar->guest.address = address;
  map_bar(*bar);
}

std::uint32_t PassthroughDevice::config_read(std::uint32_t offset, std::uint32_t size) {
  std::uint8_t bytes[4] = {};
  device_.config_read(offset, {bytes, size});  // what vfio-pci shows, then overlay ours
  for (std::uint32_t i = 0; i < size; ++i) {
    const std::uint32_t at = offset + i;
    switch (owner(at)) {
      case Owner::bar:
        bytes[i] = bar_register_byte(at);
        break;
      case Owner::hidden:
        bytes[i] = 0;
        break;  // no option ROM, no interrupt pin for the guest
      case Owner::msi:
        bytes[i] = msi_->read_byte(at - msi_cap_->offset);
        break;
      case Owner::msix_control:
        bytes[i] =
            static_cast<std::uint8_t>(msix_control_.value() >> (8 * (at - msix_cap_->offset - 2)));
        break;
      case Owner::device:
        break;
    }
  }
  std::uint32_t value = 0;
  std::memcpy(&value, bytes, size);
  return value;
}

void PassthroughDevice::config_write(std::uint32_t offset, std::uint32_t size,
                                     std::uint32_t value) {
  std::uint8_t bytes[4];
  std::memcpy(bytes, &value, 4);
  InterruptChange msi_change, msix_change;
  bool bar_written = false;
  for (std::uint32_t i = 0; i < size; ++i) {
    const std::uint32_t at = offset + i;
    switch (owner(at)) {
      case Owner::bar:
        bar_written = true;
        break;
      case Owner::hidden:
        break;
      case Owner::msi: {
        msi_change |= msi_->write_byte(at - msi_cap_->offset, bytes[i]);
        break;
      }
      case Owner::msix_control:
        if (at == msix_cap_->offset + 3u) msix_change = msix_control_.write_high_byte(bytes[i]);
        break;
      case Owner::device:
        device_.config_write(at, {&bytes[i], 1});
        break;
    }
  }
  // Sizing and moving need the whole register: a narrower write is merged into what it reads.
  if (bar_written) {
    const std::uint32_t register_offset = offset & ~3u;
    std::uint32_t merged = 0;
    for (std::uint32_t i = 0; i < 4; ++i) {
      const std::uint32_t at = register_offset + i;
      const std::uint8_t byte =
          at >= offset && at < offset + size ? bytes[at - offset] : bar_register_byte(at);
      merged |= std::uint32_t{byte} << (8 * i);
    }
    write_bar_register(register_offset, merged);
  }
  if (offset <= PCI_COMMAND && offset + size > PCI_COMMAND) {
    memory_decoding_ = (device_.config_read16(PCI_COMMAND) & PCI_COMMAND_MEMORY) != 0;
  }
  if (msi_change.any()) apply_msi(msi_change);
  if (msix_change.any()) apply_msix(msix_change, std::nullopt);
}

// ---- Interrupts --------------------------------------------------------------------------

void PassthroughDevice::apply_msi(const InterruptChange& change) {
  // A device signals with MSI-X or MSI, never both: while MSI-X is on, it wins (as in QEMU).
  if (msix_control_.enabled) return;
  const bool msi_wired = wiring_ && wiring_->irq_index() == VFIO_PCI_MSI_IRQ_INDEX;
  const unsigned count = msi_->vectors();
  if (change.enable ||
      (change.message && msi_->enabled() && msi_wired && wiring_->count() != count)) {
    wiring_.reset();
    if (!msi_->enabled()) return;
    std::vector<msix::MsiMessage> messages;
    std::vector<bool> masked;
    for (unsigned v = 0; v < count; ++v) {
      messages.push_back(msi_->message(v));
      masked.push_back(msi_->masked(v));
    }
    wiring_.emplace(device_, VFIO_PCI_MSI_IRQ_INDEX, routes_);
    wiring_->wire(messages, masked);
    spdlog::debug("guest enabled MSI: {} vector(s)", count);
    return;
  }
  if (!msi_wired || !msi_->enabled()) return;
  for (unsigned v = 0; v < wiring_->count(); ++v) {
    if (change.message) wiring_->retarget(v, msi_->message(v));
    if (change.mask) msi_->masked(v) ? wiring_->mask(v) : wiring_->unmask(v);
  }
}

// Vectors up to the highest one the guest has unmasked in the table (at least one): like QEMU,
// the host allocates interrupts only for what the guest uses, not for a GPU's whole table.
std::uint32_t PassthroughDevice::msix_vectors_in_use() const {
  std::uint32_t in_use = 1;
  for (std::uint32_t v = 0; v < table_->size(); ++v) {
    if (!table_->masked(v)) in_use = v + 1;
  }
  return in_use;
}

void PassthroughDevice::wire_msix() {
  std::vector<msix::MsiMessage> messages;
  std::vector<bool> masked;
  const std::uint32_t in_use = msix_vectors_in_use();
  for (std::uint32_t v = 0; v < in_use; ++v) {
    messages.push_back(table_->message(v));
    masked.push_back(msix_control_.function_masked || table_->masked(v));
  }
  wiring_.reset();  // MSI, if the guest had it on, goes: a device uses one or the other
  wiring_.emplace(device_, VFIO_PCI_MSIX_IRQ_INDEX, routes_);
  wiring_->wire(messages, masked);
  spdlog::debug("guest MSI-X: {} of {} vectors wired", in_use, table_->size());
}

void PassthroughDevice::apply_msix(const InterruptChange& change,
                                   std::optional<std::uint32_t> vector) {
  if (change.enable) {
    if (msix_control_.enabled) {
      wire_msix();
    } else {
      wiring_.reset();
      // MSI enabled underneath takes over again.
      if (msi_ && msi_->enabled()) apply_msi({.enable = true});
    }
    return;
  }
  if (!wiring_ || wiring_->irq_index() != VFIO_PCI_MSIX_IRQ_INDEX || !msix_control_.enabled) return;
  if (msix_vectors_in_use() > wiring_->count()) {  // the guest unmasked a vector not yet wired
    wire_msix();
    return;
  }
  const std::uint32_t first = vector.value_or(0);
  const std::uint32_t last = std::min(vector ? *vector + 1 : table_->size(), wiring_->count());
  for (std::uint32_t v = first; v < last; ++v) {
    if (change.message) wiring_->retarget(v, table_->message(v));
    if (change.mask) {
      (msix_control_.function_masked || table_->masked(v)) ? wiring_->mask(v) : wiring_->unmask(v);
    }
  }
}

bool PassthroughDevice::msix_mmio(const Bar& bar, std::uint64_t offset, bool write,
                                  std::span<std::uint8_t> data) {
  if (!msix_cap_) return false;
  const unsigned index = bar.guest.spec.index;
  if (index == msix_cap_->table_bar && offset >= msix_cap_->table_offset &&
      offset < msix_cap_->table_offset + table_->bytes()) {
    const std::uint64_t at = offset - msix_cap_->table_offset;
    if (write) {
      std::uint32_t vector = 0;
      const InterruptChange change = table_->write(at, data, vector);
      if (change.any()) apply_msix(change, vector);
    } else {
      table_->read(at, data);
    }
    return true;
  }
  const std::uint64_t pba_bytes = msix_cap_->pba_bytes();
  if (index == msix_cap_->pba_bar && offset >= msix_cap_->pba_offset &&
      offset < msix_cap_->pba_offset + pba_bytes) {
    // Pending interrupts of masked vectors wait in their eventfds: bit n is vector n's.
    if (!write) {
      std::memset(data.data(), 0, data.size());
      const bool wired = wiring_ && wiring_->irq_index() == VFIO_PCI_MSIX_IRQ_INDEX;
      for (std::size_t byte = 0; wired && byte < data.size(); ++byte) {
        for (unsigned bit = 0; bit < 8; ++bit) {
          const std::uint64_t vector = (offset - msix_cap_->pba_offset + byte) * 8 + bit;
          if (vector < wiring_->count() && wiring_->pending(static_cast<std::uint32_t>(vector))) {
            data[byte] = static_cast<std::uint8_t>(data[byte] | 1u << bit);
          }
        }
      }
    }
    return true;
  }
  return false;
}

// ---- Trapped accesses --------------------------------------------------------------------

bool PassthroughDevice::mmio(const kvm::MmioExit& exit, std::span<std::uint8_t> data) {
  for (const Bar& bar : bars_) {
    const auto& g = bar.guest;
    if (g.spec.kind == pci::BarKind::io || exit.address < g.address ||
        exit.address - g.address >= g.spec.size) {
      continue;
    }
    const std::uint64_t offset = exit.address - g.address;
    if (!memory_decoding_) {  // the device does not answer: reads float high
      if (!exit.write) std::memset(data.data(), 0xff, data.size());
      return true;
    }
    if (msix_mmio(bar, offset, exit.write, data)) return true;
    if (exit.write) {
      bar.region->write(offset, data);
    } else {
      bar.region->read(offset, data);
    }
    return true;
  }
  return false;
}

bool PassthroughDevice::io(const kvm::IoExit& exit, std::span<std::uint8_t> data) {
  for (const Bar& bar : bars_) {
    const auto& g = bar.guest;
    if (g.spec.kind != pci::BarKind::io || exit.port < g.address ||
        exit.port - g.address >= g.spec.size) {
      continue;
    }
    const std::uint64_t offset = exit.port - g.address;
    for (std::uint32_t i = 0; i < exit.count; ++i) {
      auto item = data.subspan(std::size_t{i} * exit.size, exit.size);
      if (exit.out) {
        bar.region->write(offset, item);
      } else {
        bar.region->read(offset, item);
      }
    }
    return true;
  }
  return false;
}

}  // namespace vfiokit::vmm
