// Where vfiokit looks at the host. Every layer takes these paths as a parameter, so unit tests run
// against fixture trees (tests/fixtures/NAME/{sys,proc,dev,...}) instead of the live system.
#pragma once

#include <filesystem>

namespace vfiokit {

struct HostPaths {
  std::filesystem::path sys = "/sys";
  std::filesystem::path proc = "/proc";
  std::filesystem::path dev = "/dev";
  std::filesystem::path run = "/run";
  std::filesystem::path etc = "/etc";
  std::filesystem::path lib_modules = "/lib/modules";
  std::filesystem::path var_lib = "/var/lib";  // state that outlives a boot (guests' UEFI vars)
  std::filesystem::path share = "/usr/share";  // packages' data (the ovmf package's firmware)

  // The same layout below `root`: root/sys, root/proc, root/dev, root/run, root/etc,
  // root/lib/modules, root/var/lib, root/usr/share.
  static HostPaths under(const std::filesystem::path& root) {
    return {root / "sys", root / "proc",        root / "dev",     root / "run",
            root / "etc", root / "lib/modules", root / "var/lib", root / "usr/share"};
  }
};

}  // namespace vfiokit
