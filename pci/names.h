// Human names for PCI IDs from pci.ids, through libpci.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct pci_access;

namespace vfiokit::pci {

// Owns one libpci handle. Lookups never use the network or udev's hwdb, so answers come from
// pci.ids alone and are the same on every machine with the same pci.ids.
class PciNames {
 public:
  PciNames();
  ~PciNames();
  PciNames(const PciNames&) = delete;
  PciNames& operator=(const PciNames&) = delete;

  // Empty strings when pci.ids does not know the ID.
  std::string vendor(std::uint16_t vendor_id);
  std::string device(std::uint16_t vendor_id, std::uint16_t device_id);
  std::string subsystem(std::uint16_t vendor_id, std::uint16_t device_id,
                        std::uint16_t subsystem_vendor_id, std::uint16_t subsystem_id);
  // From the 24-bit class code: the subclass name ("Non-Volatile memory controller").
  std::string class_name(std::uint32_t class_code);

 private:
  pci_access* access_;
};

}  // namespace vfiokit::pci
