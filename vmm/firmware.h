// UEFI firmware for `launch --qemu --firmware uefi`: OVMF as Debian's ovmf package installs it,
// and each guest's own writable copy of the variable store, so its UEFI settings (boot entries,
// Secure Boot keys) survive between runs as they do on a real machine.
//
// OVMF comes as two flash images QEMU maps as one pflash device: CODE (read-only) and VARS (the
// guest's NVRAM). They are built together for one flash size, and CODE + VARS fill it exactly,
// which is how a mismatched pair is told apart. Debian 12's ovmf installs, in
// /usr/share/OVMF:
//   OVMF_CODE_4M.fd (3653632 bytes) + OVMF_VARS_4M.fd (540672 bytes): 4 MiB, preferred (room
//     for Secure Boot keys; what newer Debian releases ship alone)
//   OVMF_CODE.fd (1966080 bytes) + OVMF_VARS.fd (131072 bytes): 2 MiB, the older layout
// The .ms/.secboot/.snakeoil variants are left alone: they need an SMM-capable machine (-machine
// q35,smm=on and -global driver=cfi.pflash01,property=secure,value=on).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"

namespace vfiokit::vmm {

// One CODE/VARS pair the ovmf package may install, below HostPaths::share.
struct OvmfLayout {
  std::string_view name;      // "4M", "2M"
  std::string_view code;      // "OVMF/OVMF_CODE_4M.fd"
  std::string_view vars;      // "OVMF/OVMF_VARS_4M.fd"
  std::uint64_t flash_bytes;  // what CODE + VARS fill exactly
};

// The layouts in order of preference: 4M, then 2M.
const std::vector<OvmfLayout>& ovmf_layouts();

// A complete, matching pair found on the host.
struct OvmfFirmware {
  std::string layout;  // "4M" or "2M"
  std::filesystem::path code;
  std::filesystem::path vars_template;  // never handed to QEMU: guests get a copy (guest_vars)
  std::uint64_t code_bytes = 0;
  std::uint64_t vars_bytes = 0;
};

struct OvmfLookup {
  std::optional<OvmfFirmware> firmware;  // the most preferred complete pair
  // Pairs found incomplete or mismatched ("OVMF_CODE_4M.fd is there but OVMF_VARS_4M.fd is
  // not"), also when another pair was usable.
  std::vector<std::string> problems;
};

// Why a pair of sizes (nullopt: the file is missing or not a regular file) is not a usable pair
// of `layout`, or nullopt when it is. Pure.
std::optional<std::string> ovmf_pair_problem(const OvmfLayout& layout,
                                             std::optional<std::uint64_t> code_bytes,
                                             std::optional<std::uint64_t> vars_bytes);

// Looks for every layout below paths.share (symlinks followed: they are the package's).
OvmfLookup find_ovmf(const HostPaths& paths);

// The preferred pair, or a usage Error (operation "find UEFI firmware") saying what is missing
// or mismatched, with the fix: apt-get install ovmf (or --reinstall when a file is damaged).
OvmfFirmware require_ovmf(const HostPaths& paths);

// Guest names are path components and QEMU's -name: 1 to 64 of A-Z a-z 0-9 - _ . and neither
// "." nor "..". Throws a usage Error (operation "check guest name") naming the bad character.
void validate_guest_name(std::string_view name);

struct GuestVars {
  std::filesystem::path path;  // HostPaths::var_lib/vfiokit/guests/NAME/OVMF_VARS.fd
  bool created = false;        // true when this call copied it from the template
};

// The guest's own variable store for `firmware`: created from the template the first time
// (file 0600; folders vfiokit 0755, guests and NAME 0700, whatever the umask), reused
// afterwards. Everything is opened through StateDir (base/fs.h): a symlink, a folder or file
// owned by someone else or writable by others is refused. A store whose size is not the
// template's (made for the other flash layout, or damaged) is refused (kind refused): the
// message names both sizes and layouts, the hint how to reset it, and nothing is overwritten.
// The file belongs to whoever runs vfiokit (root), 0600: a QEMU started with -runas reaches it
// only through what it opened before dropping root's rights.
GuestVars guest_vars(const HostPaths& paths, std::string_view name, const OvmfFirmware& firmware);

}  // namespace vfiokit::vmm
