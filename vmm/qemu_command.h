// The QEMU command line for a full OS guest with devices passed through (`launch --qemu`).
// Pure, so the slot layout is tested: each host slot's functions stay together on one guest
// slot (a GPU and its HDMI audio), function numbers kept, multifunction=on where there are
// several; a lone function is left for QEMU to place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pci/bdf.h"

namespace vfiokit::vmm {

inline constexpr unsigned kFirstGuestSlot = 0x10;

std::vector<std::string> qemu_command(const std::string& binary,
                                      const std::vector<std::string>& user_arguments,
                                      const std::vector<pci::Bdf>& devices);

// The most guest RAM QEMU's arguments can give the guest, in bytes: -m SIZE or -m
// size=SIZE,maxmem=MAX (the larger), sizes as QEMU reads them (a number of MiB, or with a
// B/K/M/G/T suffix); QEMU's default of 128 MiB without -m. nullopt for a -m it would refuse.
std::optional<std::uint64_t> guest_memory_bytes(const std::vector<std::string>& arguments);

// For printing: arguments quoted for a POSIX shell where they need it.
std::string shell_quote(const std::vector<std::string>& arguments);

}  // namespace vfiokit::vmm
