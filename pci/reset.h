// Which resets a PCI function really supports, and what each one takes with it. vfio-pci resets
// a device when a user opens it and again when the user lets go; without a reset that works,
// the next guest finds the state the last one left (GPUs then often fail to initialise on the
// second boot).
//
// read_reset_topology() reads where the device sits in the device tree; assess_reset() decides
// from that and the device's own facts alone, so every case is testable on values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/pci/bdf.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::pci {

// A function that a reset of the device's bus (or slot) resets too.
struct BusNeighbour {
  Bdf bdf;
  std::uint32_t class_code = 0;
  std::optional<unsigned> iommu_group;
  std::optional<std::string> driver;
  [[nodiscard]] bool same_slot(const Bdf& other) const noexcept {
    return bdf.domain == other.domain && bdf.bus == other.bus && bdf.device == other.device;
  }
};

struct ResetTopology {
  // The bridge whose Secondary Bus Reset resets the device's bus; nullopt on a root bus, which
  // no bridge above it can reset.
  std::optional<Bdf> parent_bridge;
  // Every other function below that bridge (its bus and the buses behind bridges on it), in BDF
  // order: a secondary bus reset resets them all.
  std::vector<BusNeighbour> neighbours;
  // The hot-plug slot that holds it (/sys/bus/pci/slots/NAME with a "power" control), whose
  // controller can reset the slot by cycling the link.
  std::optional<std::string> hotplug_slot;
};

// Reads the device's place in the tree. A device dir that is missing or odd gives an empty
// topology, never an error: the reset report then says less.
ResetTopology read_reset_topology(const HostPaths& paths, const Bdf& bdf);

struct ResetSupport {
  // sysfs reset_method (kernel 5.15 and later), in the kernel's order: what it will try, and
  // authoritative over what config space suggests (quirks disable FLR or bus resets on devices
  // known to break). Empty when the file is absent.
  std::vector<std::string> kernel_methods;
  bool flr = false;     // PCIe Device Capabilities: Function Level Reset
  bool af_flr = false;  // Advanced Features: FLR with Transactions Pending
  bool pm = false;      // D3hot -> D0 resets it (PM capability without No_Soft_Reset)
  bool bus = false;     // a parent bridge whose secondary bus reset covers it
  bool slot = false;    // a hot-plug slot that can reset it
  // What a bus or slot reset resets besides this device.
  std::vector<BusNeighbour> also_reset;
  // False when only the config header could be read: FLR, AF and PM are unknown, not absent.
  bool capabilities_known = true;

  // The methods in the kernel's names ("flr", "af_flr", "pm", "bus", ...): reset_method when
  // the kernel has one, else what config space and the tree offer.
  [[nodiscard]] std::vector<std::string> methods() const;
  // A reset that touches this function alone (anything but "bus" and "cxl_bus").
  [[nodiscard]] bool function_level() const;
};

ResetSupport assess_reset(const PciDevice& dev, const ResetTopology& topology);

}  // namespace vfiokit::pci
