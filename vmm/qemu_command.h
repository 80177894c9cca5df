// The QEMU command line for a full OS guest with devices passed through (`launch --qemu`).
// Pure, so the slot layout is tested: each host slot's functions stay together on one guest
// slot (a GPU and its HDMI audio), function numbers kept, multifunction=on where there are
// several; a lone function is left for QEMU to place.
#pragma once

#include <string>
#include <vector>

#include "pci/bdf.h"

namespace vfiokit::vmm {

inline constexpr unsigned kFirstGuestSlot = 0x10;

std::vector<std::string> qemu_command(const std::string& binary,
                                      const std::vector<std::string>& user_arguments,
                                      const std::vector<pci::Bdf>& devices);

// For printing: arguments quoted for a POSIX shell where they need it.
std::string shell_quote(const std::vector<std::string>& arguments);

}  // namespace vfiokit::vmm
