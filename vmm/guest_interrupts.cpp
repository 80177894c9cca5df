#include "vfiokit/vmm/guest_interrupts.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <algorithm>
#include <cstring>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"

namespace vfiokit::vmm {
namespace {

constexpr std::uint64_t kPage = 4096;

ByteRange whole_pages(std::uint64_t offset, std::uint64_t bytes) {
  return {offset & ~(kPage - 1), (offset + bytes + kPage - 1) & ~(kPage - 1)};
}

}  // namespace

GuestInterrupts::GuestInterrupts(const vfio::DeviceAccess& device, msix::RouteTable& routes,
                                 const std::optional<pci::MsiCapability>& msi,
                                 const std::optional<pci::MsixCapability>& msix,
                                 const std::optional<IntxPin>& intx)
    : device_(device), routes_(routes), msi_cap_(msi), msix_cap_(msix) {
  if (msi_cap_) msi_.emplace(*msi_cap_);
  if (msix_cap_ && msix_cap_->table_size > 0) {
    table_.emplace(msix_cap_->table_size);
    msix_control_.table_size_field = static_cast<std::uint16_t>(msix_cap_->table_size - 1);
  } else {
    msix_cap_.reset();
  }
  if (!intx) return;
  intx_gsi_ = intx->gsi;
  try {
    restore_intx();
  } catch (const Error& e) {
    if (intx->required) throw;
    // A pin the VMM cannot serve is no pin: the guest is told so and uses MSI or MSI-X.
    log::warn("INTx of {} not offered to the guest: {}", device.bdf().to_string(), e.what());
    intx_gsi_.reset();
  }
}

void GuestInterrupts::restore_intx() {
  if (!intx_gsi_ || intx_ || wiring_) return;
  intx_.emplace(device_, routes_.sink(), *intx_gsi_);
}

void GuestInterrupts::unwire() {
  wiring_.reset();
  intx_.reset();
}

void GuestInterrupts::reset() {
  unwire();
  if (msi_cap_) msi_.emplace(*msi_cap_);
  if (table_) table_.emplace(table_->size());
  msix_control_.enabled = false;
  msix_control_.function_masked = false;
  restore_intx();
}

// ---- Config space ------------------------------------------------------------------------

bool GuestInterrupts::msi_byte(std::uint32_t offset) const noexcept {
  return msi_ && offset >= msi_cap_->offset && msi_->owns(offset - msi_cap_->offset);
}

bool GuestInterrupts::msix_control_byte(std::uint32_t offset) const noexcept {
  return msix_cap_ && offset >= msix_control_offset() && offset < msix_control_offset() + 2;
}

bool GuestInterrupts::owns_config(std::uint32_t offset) const noexcept {
  return msi_byte(offset) || msix_control_byte(offset);
}

std::uint8_t GuestInterrupts::read_config(std::uint32_t offset) const {
  if (msi_byte(offset)) {
    const std::uint32_t at = offset - msi_cap_->offset;
    const auto pending = msi_->pending_offset();
    if (pending && at >= *pending && at < *pending + 4) return msi_pending_byte(at - *pending);
    return msi_->read_byte(at);
  }
  if (msix_control_byte(offset)) {
    const std::uint32_t at = offset - msix_control_offset();
    return static_cast<std::uint8_t>(msix_control_.value() >> (8 * at));
  }
  return 0;
}

void GuestInterrupts::write_config(std::uint32_t offset, std::span<const std::uint8_t> bytes) {
  InterruptChange msi_change, msix_change;
  for (std::uint32_t i = 0; i < bytes.size(); ++i) {
    const std::uint32_t at = offset + i;
    if (msi_byte(at)) {
      msi_change |= msi_->write_byte(at - msi_cap_->offset, bytes[i]);
    } else if (msix_control_byte(at) && at == msix_control_offset() + 1) {
      // The high byte: enable and function mask; the low one (table size) is read-only.
      msix_change |= msix_control_.write_high_byte(bytes[i]);
    }
  }
  if (msi_change.any()) apply_msi(msi_change);
  if (msix_change.any()) apply_msix(msix_change, std::nullopt);
}

// Pending Bits: a masked MSI vector that fired, as MsixWiring::pending() sees it.
std::uint8_t GuestInterrupts::msi_pending_byte(std::uint32_t byte) const {
  if (!wiring_ || wiring_->irq_index() != VFIO_PCI_MSI_IRQ_INDEX) return 0;
  std::uint8_t bits = 0;
  for (unsigned bit = 0; bit < 8; ++bit) {
    const std::uint32_t vector = byte * 8 + bit;
    if (vector < wiring_->count() && wiring_->pending(vector)) {
      bits = static_cast<std::uint8_t>(bits | 1u << bit);
    }
  }
  return bits;
}

// ---- What is wired -------------------------------------------------------------------------

std::optional<std::uint32_t> GuestInterrupts::wired_index() const noexcept {
  if (intx_) return VFIO_PCI_INTX_IRQ_INDEX;
  if (!wiring_) return std::nullopt;
  return wiring_->irq_index();
}

bool GuestInterrupts::msix_wired() const noexcept {
  return wiring_ && wiring_->irq_index() == VFIO_PCI_MSIX_IRQ_INDEX;
}

void GuestInterrupts::apply_msi(const InterruptChange& change) {
  if (msix_control_.enabled) return;  // MSI-X wins while it is on
  const bool msi_wired = wiring_ && wiring_->irq_index() == VFIO_PCI_MSI_IRQ_INDEX;
  const unsigned count = msi_->vectors();
  if (change.enable ||
      (change.message && msi_->enabled() && msi_wired && wiring_->count() != count)) {
    wiring_.reset();
    if (!msi_->enabled()) {
      restore_intx();
      return;
    }
    std::vector<msix::MsiMessage> messages;
    std::vector<bool> masked;
    for (unsigned v = 0; v < count; ++v) {
      messages.push_back(msi_->message(v));
      masked.push_back(msi_->masked(v));
    }
    intx_.reset();  // vfio-pci takes MSI only while INTx is off
    wiring_.emplace(device_, VFIO_PCI_MSI_IRQ_INDEX, routes_);
    wiring_->wire(messages, masked);
    log::debug("guest enabled MSI: {} vector(s)", count);
    return;
  }
  if (!msi_wired || !msi_->enabled()) return;
  for (unsigned v = 0; v < wiring_->count(); ++v) {
    if (change.message) wiring_->retarget(v, msi_->message(v));
    if (change.mask) msi_->masked(v) ? wiring_->mask(v) : wiring_->unmask(v);
  }
}

std::uint32_t GuestInterrupts::msix_vectors_in_use() const {
  std::uint32_t in_use = 1;
  for (std::uint32_t v = 0; v < table_->size(); ++v) {
    if (!table_->masked(v)) in_use = v + 1;
  }
  return in_use;
}

GuestInterrupts::MsixProgramming GuestInterrupts::msix_programming(std::uint32_t in_use) const {
  MsixProgramming programming;
  for (std::uint32_t v = 0; v < in_use; ++v) {
    programming.messages.push_back(table_->message(v));
    programming.masked.push_back(msix_control_.function_masked || table_->masked(v));
  }
  return programming;
}

void GuestInterrupts::wire_msix() {
  const std::uint32_t in_use = msix_vectors_in_use();
  const MsixProgramming programming = msix_programming(in_use);
  wiring_.reset();  // MSI, if the guest had it on, goes: a device uses one or the other
  intx_.reset();    // and so does INTx
  wiring_.emplace(device_, VFIO_PCI_MSIX_IRQ_INDEX, routes_);
  wiring_->wire(programming.messages, programming.masked);
  log::debug("guest MSI-X: {} of {} vectors wired", in_use, table_->size());
}

void GuestInterrupts::grow_msix() {
  const std::uint32_t in_use = msix_vectors_in_use();
  const MsixProgramming programming = msix_programming(in_use);
  const std::uint32_t before = wiring_->count();
  const bool gap = wiring_->grow(programming.messages, programming.masked);
  log::debug("guest MSI-X: {} of {} vectors wired (from {}{})", in_use, table_->size(), before,
             gap ? ", off and on again" : ", added while enabled");
}

void GuestInterrupts::apply_msix(const InterruptChange& change,
                                 std::optional<std::uint32_t> vector) {
  if (change.enable) {
    if (msix_control_.enabled) {
      wire_msix();
    } else {
      wiring_.reset();
      if (msi_ && msi_->enabled()) {
        apply_msi({.enable = true});  // MSI underneath takes over
      } else {
        restore_intx();
      }
    }
    return;
  }
  if (!msix_wired() || !msix_control_.enabled) return;
  if (msix_vectors_in_use() > wiring_->count()) {  // the guest unmasked a vector not yet wired
    grow_msix();
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

// ---- The MSI-X table and PBA ---------------------------------------------------------------

std::vector<ByteRange> GuestInterrupts::trapped_pages(unsigned bar) const {
  std::vector<ByteRange> pages;
  if (!msix_cap_) return pages;
  if (msix_cap_->table_bar == bar) {
    pages.push_back(whole_pages(msix_cap_->table_offset, msix_cap_->table_bytes()));
  }
  if (msix_cap_->pba_bar == bar) {
    pages.push_back(whole_pages(msix_cap_->pba_offset, msix_cap_->pba_bytes()));
  }
  return pages;
}

bool GuestInterrupts::in_table(unsigned bar, std::uint64_t offset) const noexcept {
  return msix_cap_ && bar == msix_cap_->table_bar && offset >= msix_cap_->table_offset &&
         offset - msix_cap_->table_offset < table_->bytes();
}

bool GuestInterrupts::in_pba(unsigned bar, std::uint64_t offset) const noexcept {
  return msix_cap_ && bar == msix_cap_->pba_bar && offset >= msix_cap_->pba_offset &&
         offset - msix_cap_->pba_offset < msix_cap_->pba_bytes();
}

void GuestInterrupts::read_pba(std::uint64_t offset, std::span<std::uint8_t> data) const {
  // Pending interrupts of masked vectors wait in their eventfds: bit n is vector n's.
  std::memset(data.data(), 0, data.size());
  if (!msix_wired()) return;
  const std::uint64_t first_bit = (offset - msix_cap_->pba_offset) * 8;
  for (std::size_t byte = 0; byte < data.size(); ++byte) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      const std::uint64_t vector = first_bit + byte * 8 + bit;
      if (vector < wiring_->count() && wiring_->pending(static_cast<std::uint32_t>(vector))) {
        data[byte] = static_cast<std::uint8_t>(data[byte] | 1u << bit);
      }
    }
  }
}

bool GuestInterrupts::mmio(unsigned bar, std::uint64_t offset, bool write,
                           std::span<std::uint8_t> data) {
  if (in_table(bar, offset)) {
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
  if (in_pba(bar, offset)) {
    if (!write) read_pba(offset, data);  // read-only: writes go nowhere
    return true;
  }
  return false;
}

}  // namespace vfiokit::vmm
