// The QEMU command line for a full OS guest with devices passed through (`launch --qemu`): the
// guest's PCI topology, per-device options, firmware, hugepage-backed RAM, vCPUs and the QMP
// socket vfiokit pins vCPUs through. Pure, so every layout is tested as a golden command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/pci/bdf.h"
#include "vfiokit/vmm/qemu_arguments.h"

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

// A function vfiokit passes through, and the options (--device-opt KEY=VALUE, in order) for its
// -device vfio-pci.
struct QemuDevice {
  pci::Bdf host;
  std::uint32_t class_code = 0;  // class, subclass, prog-if: x-vga needs a VGA controller
  std::vector<std::string> options;
};

// UEFI as a pflash pair: the firmware's code, read-only and shared, and the guest's own copy of
// the variable store, writable, so boot entries and settings survive from one run to the next.
struct UefiPflash {
  std::string code;
  std::string vars;
};

struct QemuLaunch {
  std::string binary = "qemu-system-x86_64";
  std::vector<std::string> user_arguments;  // after `--`
  // Every endpoint bound for the guest, including those the user wrote a -device for.
  std::vector<QemuDevice> devices;
  // No pcie-root-ports on q35: devices on the root bus, as on i440fx.
  bool flat = false;
  std::optional<RunAs> run_as;
  std::optional<UefiPflash> uefi;
  std::optional<std::uint64_t> hugepage_size;  // guest RAM on hugetlb pages of this size
  std::optional<unsigned> cpus;                // -smp
  // vfiokit's QMP socket: QEMU starts paused (-S) so vCPUs are pinned before they run.
  std::optional<std::string> qmp_socket;
  std::optional<std::string> name;  // -name guest=NAME
};

// Where a passed-through function sits in the guest, for the plan and the report.
struct GuestPlacement {
  pci::Bdf host;
  std::string where;  // "function 0 behind pcie-root-port vfiokit-rp0", "as the user wrote it"
  bool operator==(const GuestPlacement&) const = default;
};

struct QemuCommand {
  std::vector<std::string> arguments;  // the binary first
  std::vector<GuestPlacement> placements;
  // vfiokit added -S: QEMU waits for `cont` over the QMP socket once vCPUs are pinned. False
  // when the user's arguments already had -S (the guest starts when they say).
  bool paused = false;
};

// The command line: the user's arguments, then what vfiokit adds. On q35 (unless `flat`) each
// host slot gets a pcie-root-port of its own with its functions behind it (multifunction: a GPU
// with its HDMI audio together), as Proxmox's pcie=1 and libvirt do; on i440fx, other machines
// or `flat`, a lone function is left for QEMU to place and a slot's functions share one root-bus
// slot from kFirstGuestSlot on. A slot without function 0 is renumbered from 0 (a guest looks
// for the others only behind function 0). A -device vfio-pci the user wrote is left as written
// and not added again; a function of the same host slot they left out cannot be placed beside
// theirs and is an error that names it. Conflicting arguments (a second -smp, a -bios with
// UEFI, -mem-path with hugepages, options for a device the user wrote, ...) are usage Errors.
QemuCommand build_qemu_command(const QemuLaunch& launch);

// The checks of --device-opt that look at the host: romfile= with a path must name a file
// vfiokit can read (QEMU reads it before it drops root); a bare name is left to QEMU, which
// looks in its own data folders. Throws a usage Error naming the file.
void check_device_option_files(const std::vector<QemuDevice>& devices);

// "BDF:KEY=VALUE[,KEY=VALUE...]" (--device-opt) split into the device (text up to the last ':'
// before the first '=', so "0000:01:00.0:romfile=/a:b" works) and its KEY=VALUE items (QEMU's
// ",," is a comma inside a value; the command escapes it again). Usage Error for anything else.
struct DeviceOptionText {
  std::string device;
  std::vector<std::string> options;
};
DeviceOptionText parse_device_option(std::string_view text);

// For printing: arguments quoted for a POSIX shell where they need it.
std::string shell_quote(const std::vector<std::string>& arguments);

}  // namespace vfiokit::vmm
