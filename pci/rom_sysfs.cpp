// read_sysfs_rom (pci/rom.h): the one part of the ROM code that touches the host.
#include <cerrno>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/pci/device.h"
#include "vfiokit/pci/rom.h"

namespace vfiokit::pci {
namespace {

// Kernel contract (drivers/pci/pci-sysfs.c): the rom attribute refuses reads with EINVAL until
// something other than "0\n" is written to it, and only exactly "0\n" (two bytes at offset 0)
// turns it off again: a bare "0" would turn it on.
constexpr std::string_view kRomEnable = "1";
constexpr std::string_view kRomDisable = "0\n";

// Turns the attribute off again when the read is done, however it ended.
class RomEnabled {
 public:
  explicit RomEnabled(std::filesystem::path path) : path_(std::move(path)) {
    write_attribute(path_, kRomEnable);
  }
  RomEnabled(const RomEnabled&) = delete;
  RomEnabled& operator=(const RomEnabled&) = delete;
  ~RomEnabled() {
    try {
      write_attribute(path_, kRomDisable);
    } catch (const Error&) {
      // Only root could enable it, and root can disable it; nothing better to do in a destructor.
    }
  }

 private:
  std::filesystem::path path_;
};

Error rom_error(Error error, const Bdf& bdf) {
  error.with("bdf", bdf.to_string());
  switch (error.errno_value()) {
    case EACCES:
    case EPERM:
      error.hint("reading a device's ROM needs root: run vfiokit as root");
      break;
    case EIO:
      error.hint("the kernel found no ROM image starting with 0x55 0xAA in the ROM BAR");
      break;
    case ENOENT:
      error.hint("sysfs has no rom attribute for it: the kernel exposes no ROM for this device");
      break;
    default:
      break;
  }
  return error;
}

}  // namespace

std::vector<std::uint8_t> read_sysfs_rom(const HostPaths& paths, const Bdf& bdf,
                                         std::size_t max_bytes) {
  const std::filesystem::path path = device_dir(paths, bdf) / "rom";
  try {
    return read_bytes(path, max_bytes);
  } catch (const Error& e) {
    if (e.errno_value() != EINVAL) throw rom_error(e, bdf);
  }
  try {
    const RomEnabled enabled(path);
    return read_bytes(path, max_bytes);
  } catch (const Error& e) {
    throw rom_error(e, bdf);
  }
}

}  // namespace vfiokit::pci
