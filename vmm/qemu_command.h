// The QEMU command line for a full OS guest with devices passed through (`launch --qemu`).
// Pure, so the slot layout is tested: each host slot's functions stay together on one guest
// slot (a GPU and its HDMI audio), function numbers kept, multifunction=on where there are
// several; a lone function is left for QEMU to place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/pci/bdf.h"

namespace vfiokit::vmm {

inline constexpr unsigned kFirstGuestSlot = 0x10;

// Who QEMU becomes once it has set up (its -runas): vfiokit binds and restores as root, the
// guest runs without root's rights, as libvirt runs it.
struct RunAs {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string user;  // for messages: the name, or the uid
  bool operator==(const RunAs&) const = default;
};

// "USER", "USER:GROUP", "UID" or "UID:GID" (a user's login group when no group is given),
// looked up in the passwd and group databases; numbers need no entry when both are given.
// Throws a usage Error naming what is unknown. Root is refused: it would gain nothing.
RunAs resolve_run_as(std::string_view text);

// RLIMIT_MEMLOCK for QEMU once it is no longer root: vfio pins all guest RAM, plus 1 GiB for
// what QEMU maps besides (ROMs, MMIO, its own buffers), the allowance libvirt gives.
std::uint64_t run_as_memlock_limit(std::uint64_t guest_memory) noexcept;

// The command: the user's arguments, a -device vfio-pci for each device, and -runas UID:GID.
std::vector<std::string> qemu_command(const std::string& binary,
                                      const std::vector<std::string>& user_arguments,
                                      const std::vector<pci::Bdf>& devices,
                                      const std::optional<RunAs>& run_as = std::nullopt);

// The most guest RAM QEMU's arguments can give the guest, in bytes: -m SIZE or -m
// size=SIZE,maxmem=MAX (the larger), sizes as QEMU reads them (a number of MiB, or with a
// B/K/M/G/T suffix); QEMU's default of 128 MiB without -m. nullopt for a -m it would refuse.
std::optional<std::uint64_t> guest_memory_bytes(const std::vector<std::string>& arguments);

// For printing: arguments quoted for a POSIX shell where they need it.
std::string shell_quote(const std::vector<std::string>& arguments);

}  // namespace vfiokit::vmm
