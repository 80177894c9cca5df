// What the user's own QEMU arguments (`launch --qemu -- ARGS`) already say: the machine type,
// the guest's RAM, the vfio-pci devices they placed themselves, options vfiokit must not add a
// second time. Pure: read the way QEMU reads them, so what vfiokit adds fits around them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/pci/bdf.h"

namespace vfiokit::vmm {

// The values of every occurrence of option `name` ("-m"; "--m" is the same option to QEMU), in
// order. An option at the very end, without its value, is not counted.
std::vector<std::string_view> option_values(const std::vector<std::string>& arguments,
                                            std::string_view name);
// Whether the flag `name` ("-S") appears.
bool has_flag(const std::vector<std::string>& arguments, std::string_view name);

// One -device/-machine value split at its commas, QEMU's ",," being a comma inside a value.
// "vfio-pci,host=01:00.0" -> {"vfio-pci", "host=01:00.0"}.
std::vector<std::string> split_qemu_options(std::string_view value);
// The value of KEY in KEY=VALUE items, or nullopt.
std::optional<std::string> qemu_option(const std::vector<std::string>& items, std::string_view key);

enum class MachineFamily { q35, i440fx, other };

struct GuestMachine {
  std::string type;  // "q35", "pc-q35-7.2", "pc" (QEMU's default for x86_64), "microvm", ...
  MachineFamily family = MachineFamily::i440fx;
  // -machine memory-backend=ID was given.
  bool has_memory_backend = false;
};
// From -M/-machine (QEMU merges them; the type is the first item, or type=...; the last given
// wins). Without one, QEMU's x86_64 default "pc".
GuestMachine guest_machine(const std::vector<std::string>& arguments);

// A vfio-pci device the user wrote themselves after `--`: vfiokit leaves it as it is.
struct UserVfioDevice {
  pci::Bdf host;
  std::string argument;  // the -device value, for messages
  bool operator==(const UserVfioDevice&) const = default;
};
// -device vfio-pci[-nohotplug],host=BDF or sysfsdev=/sys/bus/pci/devices/BDF. A vfio-pci
// device vfiokit cannot read (JSON syntax, no host, a host that is not a BDF) is a usage Error:
// vfiokit would otherwise bind and add it a second time.
std::vector<UserVfioDevice> user_vfio_devices(const std::vector<std::string>& arguments);

// The most guest RAM QEMU's arguments can give the guest, in bytes: -m SIZE or -m
// size=SIZE,maxmem=MAX (the larger), sizes as QEMU reads them (a number of MiB, or with a
// B/K/M/G/T suffix); QEMU's default of 128 MiB without -m. nullopt for a -m it would refuse.
std::optional<std::uint64_t> guest_memory_bytes(const std::vector<std::string>& arguments);
// The RAM the guest boots with: -m's size (not maxmem), 128 MiB without -m; nullopt for a -m
// QEMU would refuse.
std::optional<std::uint64_t> initial_memory_bytes(const std::vector<std::string>& arguments);

// A size as QEMU reads it: an integer, MiB without a suffix, or with one of B K M G T.
std::optional<std::uint64_t> parse_qemu_size(std::string_view text);

}  // namespace vfiokit::vmm
