#include "vfiokit/vmm/firmware.h"

#include <sys/stat.h>

#include <cerrno>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::vmm {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kVarsName = "OVMF_VARS.fd";
constexpr std::size_t kMaxGuestNameLength = 64;
// Larger than any OVMF store; bounds what a damaged or planted file can make vfiokit read.
constexpr std::size_t kMaxVarsBytes = std::size_t{64} << 20;

// The size of a regular file (symlinks followed), or nullopt when there is none.
std::optional<std::uint64_t> regular_file_size(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return std::nullopt;
    throw Error::from_errno(err, "stat").with("path", path.string());
  }
  if (!S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

std::string file_name(std::string_view relative) { return fs::path(relative).filename().string(); }

}  // namespace

const std::vector<OvmfLayout>& ovmf_layouts() {
  static const std::vector<OvmfLayout> layouts = {
      {"4M", "OVMF/OVMF_CODE_4M.fd", "OVMF/OVMF_VARS_4M.fd", std::uint64_t{4} << 20},
      {"2M", "OVMF/OVMF_CODE.fd", "OVMF/OVMF_VARS.fd", std::uint64_t{2} << 20},
  };
  return layouts;
}

std::optional<std::string> ovmf_pair_problem(const OvmfLayout& layout,
                                             std::optional<std::uint64_t> code_bytes,
                                             std::optional<std::uint64_t> vars_bytes) {
  const std::string code = file_name(layout.code);
  const std::string vars = file_name(layout.vars);
  if (!code_bytes && !vars_bytes) return code + " and " + vars + " are missing";
  if (!code_bytes) return vars + " is there but " + code + " is missing";
  if (!vars_bytes) return code + " is there but " + vars + " is missing";
  if (*code_bytes == 0 || *vars_bytes == 0 || *code_bytes + *vars_bytes != layout.flash_bytes) {
    return code + " (" + std::to_string(*code_bytes) + " bytes) and " + vars + " (" +
           std::to_string(*vars_bytes) + " bytes) do not fill a " + human_size(layout.flash_bytes) +
           " flash together: not a matching pair";
  }
  return std::nullopt;
}

OvmfLookup find_ovmf(const HostPaths& paths) {
  OvmfLookup lookup;
  for (const OvmfLayout& layout : ovmf_layouts()) {
    const fs::path code = paths.share / layout.code;
    const fs::path vars = paths.share / layout.vars;
    const auto code_bytes = regular_file_size(code);
    const auto vars_bytes = regular_file_size(vars);
    // Neither file: that layout is simply not installed, which is no problem to report.
    if (!code_bytes && !vars_bytes) continue;
    if (auto problem = ovmf_pair_problem(layout, code_bytes, vars_bytes)) {
      lookup.problems.push_back(std::move(*problem));
    } else if (!lookup.firmware) {
      lookup.firmware =
          OvmfFirmware{std::string(layout.name), code, vars, *code_bytes, *vars_bytes};
    }
  }
  return lookup;
}

OvmfFirmware require_ovmf(const HostPaths& paths) {
  OvmfLookup lookup = find_ovmf(paths);
  if (lookup.firmware) return std::move(*lookup.firmware);
  const fs::path folder = paths.share / "OVMF";
  if (lookup.problems.empty()) {
    throw Error("find UEFI firmware",
                "OVMF is not installed: no OVMF_CODE_4M.fd + OVMF_VARS_4M.fd or OVMF_CODE.fd + "
                "OVMF_VARS.fd in " +
                    folder.string())
        .with("path", folder.string())
        .hint("apt-get install ovmf (or use --firmware bios)")
        .kind(ErrorKind::usage);
  }
  throw Error("find UEFI firmware",
              "no usable OVMF pair in " + folder.string() + ": " + join(lookup.problems, "; "))
      .with("path", folder.string())
      .hint("apt-get install --reinstall ovmf")
      .kind(ErrorKind::usage);
}

void validate_guest_name(std::string_view name) {
  const auto refuse = [&](const std::string& why) {
    return Error("check guest name", "guest name '" + std::string(name) + "' " + why)
        .with("name", std::string(name))
        .hint(
            "use 1 to 64 letters, digits, '-', '_' or '.' (it names a folder under "
            "/var/lib/vfiokit/guests and QEMU's -name)")
        .kind(ErrorKind::usage);
  };
  if (name.empty()) throw refuse("is empty");
  if (name.size() > kMaxGuestNameLength) {
    throw refuse("is " + std::to_string(name.size()) + " characters long, more than " +
                 std::to_string(kMaxGuestNameLength));
  }
  if (name == "." || name == "..") throw refuse("is not a folder name");
  for (const char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!allowed) {
      const auto byte = static_cast<unsigned char>(c);
      throw refuse(byte >= 0x21 && byte < 0x7f ? std::string("holds '") + c + "'"
                                               : "holds the byte " + hex(byte));
    }
  }
}

GuestVars guest_vars(const HostPaths& paths, std::string_view name, const OvmfFirmware& firmware) {
  validate_guest_name(name);
  const StateDir top = StateDir::create(paths.var_lib / "vfiokit", 0755);
  const StateDir guests = top.create_subdir("guests", 0700);
  const StateDir guest = guests.create_subdir(name, 0700);
  GuestVars vars{guest.path() / kVarsName, false};
  if (const auto existing = guest.read_file(kVarsName, kMaxVarsBytes)) {
    if (existing->size() == firmware.vars_bytes) return vars;
    std::string made_for;
    for (const OvmfLayout& layout : ovmf_layouts()) {
      if (layout.name != firmware.layout && regular_file_size(paths.share / layout.vars) ==
                                                std::optional<std::uint64_t>(existing->size())) {
        made_for = " (the size of the " + std::string(layout.name) + " firmware's store)";
      }
    }
    throw Error("prepare UEFI variables",
                "guest " + std::string(name) + "'s " + std::string(kVarsName) + " is " +
                    std::to_string(existing->size()) + " bytes" + made_for + ", but the " +
                    firmware.layout + " firmware's template " +
                    firmware.vars_template.filename().string() + " is " +
                    std::to_string(firmware.vars_bytes) +
                    " bytes: the store does not fit this firmware")
        .with("path", vars.path.string())
        .with("template", firmware.vars_template.string())
        .hint("to start over with empty UEFI settings (boot entries and keys are lost), remove " +
              vars.path.string() + "; vfiokit copies a fresh one from the template")
        .kind(ErrorKind::refused);
  }
  const std::vector<std::uint8_t> bytes = read_bytes(firmware.vars_template, kMaxVarsBytes);
  if (bytes.size() != firmware.vars_bytes) {
    throw Error("prepare UEFI variables", "the template changed while it was read")
        .with("path", firmware.vars_template.string());
  }
  guest.write_file_durable(kVarsName, std::string(bytes.begin(), bytes.end()), 0600);
  vars.created = true;
  return vars;
}

}  // namespace vfiokit::vmm
