#include "vfiokit/pci/names.h"

extern "C" {
#include <pci/pci.h>
}

#include <cstdarg>
#include <cstdio>

#include "vfiokit/base/log.h"

namespace vfiokit::pci {
namespace {

constexpr int kLocalOnly = PCI_LOOKUP_NO_NUMBERS | PCI_LOOKUP_NO_HWDB;

void log_libpci_warning(char* format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  log::debug("libpci: {}", buffer);
}

std::string lookup(pci_access* access, int flags, auto... ids) {
  char buffer[256];
  // libpci writes at most sizeof buffer bytes and returns buffer, or nullptr when pci.ids does
  // not know the ID (PCI_LOOKUP_NO_NUMBERS).
  const char* name = pci_lookup_name(access, buffer, sizeof buffer, flags | kLocalOnly,
                                     static_cast<unsigned>(ids)...);
  return name ? std::string(name) : std::string();
}

}  // namespace

PciNames::PciNames() : access_(pci_alloc()) {
  access_->warning = log_libpci_warning;
  access_->debug = log_libpci_warning;
}

PciNames::~PciNames() { pci_cleanup(access_); }

std::string PciNames::vendor(std::uint16_t vendor_id) {
  return lookup(access_, PCI_LOOKUP_VENDOR, vendor_id);
}

std::string PciNames::device(std::uint16_t vendor_id, std::uint16_t device_id) {
  return lookup(access_, PCI_LOOKUP_DEVICE, vendor_id, device_id);
}

std::string PciNames::subsystem(std::uint16_t vendor_id, std::uint16_t device_id,
                                std::uint16_t subsystem_vendor_id, std::uint16_t subsystem_id) {
  return lookup(access_, PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_DEVICE, vendor_id, device_id,
                subsystem_vendor_id, subsystem_id);
}

std::string PciNames::class_name(std::uint32_t class_code) {
  std::string name = lookup(access_, PCI_LOOKUP_CLASS, class_code >> 8);
  // For a known class with an unknown subclass libpci appends the number ("... [00ff]");
  // callers print the number themselves.
  if (const std::size_t bracket = name.rfind(" [");
      bracket != std::string::npos && name.ends_with(']')) {
    name.erase(bracket);
  }
  return name;
}

}  // namespace vfiokit::pci
