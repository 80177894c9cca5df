// Shared by the benchmarks that run inside the rig: find a device by vendor:device (slots move
// when the rig's device list changes) and put it on vfio-pci.
#pragma once

#include <string>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::bench {

// "1234:11e8" -> the first such function. Throws Error if there is none.
inline pci::Bdf find_function(const std::string& id) {
  const auto colon = id.find(':');
  const auto vendor = parse_uint(id.substr(0, colon), 16);
  const auto device =
      colon == std::string::npos ? std::nullopt : parse_uint(id.substr(colon + 1), 16);
  if (!vendor || !device)
    throw Error("bench", "'" + id + "' is not VENDOR:DEVICE").kind(ErrorKind::usage);
  for (const auto& bdf : pci::list_pci_devices({})) {
    const auto dev = pci::read_pci_device({}, bdf, pci::ConfigDepth::header);
    if (dev.vendor_id == *vendor && dev.device_id == *device) return bdf;
  }
  throw Error("bench", "no PCI function " + id + " in this machine");
}

// The same, bound to vfio-pci. Throws Error if binding fails.
inline pci::Bdf bound_device(const std::string& id) {
  const pci::Bdf bdf = find_function(id);
  const auto bind = run_command({"vfiokit", "bind", bdf.to_string()});
  if (bind.exit_status != 0) throw Error("bench", "vfiokit bind failed: " + bind.output);
  return bdf;
}

}  // namespace vfiokit::bench
