// What on the host still uses a display device (class 03): processes holding its DRM nodes, a
// framebuffer console bound to it, and a firmware framebuffer (efifb, simplefb, vesafb...)
// claiming one of its BARs. Taking the GPU away from under them crashes the display server,
// leaves the console writing into memory the guest now owns, or hangs the unbind, so bind
// refuses unless forced (--force-display).
//
// A GPU driver alone (amdgpu, nouveau, i915...) with none of these users is not a reason to
// refuse: unbinding an idle driver is what bind does. It is reported beside the users.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/pci/bdf.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::bind {

// One range of /proc/iomem: "START-END : NAME", nested two spaces per level.
struct IomemRange {
  std::uint64_t start = 0;
  std::uint64_t end = 0;  // inclusive
  std::string name;
  unsigned depth = 0;
  // Index of the enclosing range (the nearest earlier line one level up); nullopt at the top.
  std::optional<std::size_t> parent;
};
// Lines that do not parse (no " : ", not hex, end below start) are skipped, and so is
// everything nested below them. Unprivileged readers see every address as zero; the nesting
// is still right.
std::vector<IomemRange> parse_iomem(std::string_view text);

// "efifb", "simplefb", "simpledrm", "vesafb", "BOOTFB", "simple-framebuffer.0", ...
bool is_firmware_framebuffer(std::string_view iomem_name) noexcept;
// Kernel drivers that drive a display and keep clients and consoles on it.
bool is_gpu_driver(std::string_view driver) noexcept;

struct FirmwareFramebuffer {
  std::string name;
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::optional<unsigned> bar;  // the BAR it lies in, when the addresses are known
  [[nodiscard]] std::string describe() const;
};
// The firmware framebuffers in `iomem` that lie inside one of `bars` or are nested below a
// range named `bdf` (the kernel nests a device's claimed ranges under its BARs).
std::vector<FirmwareFramebuffer> firmware_framebuffers_on(std::span<const IomemRange> iomem,
                                                          const pci::Bdf& bdf,
                                                          std::span<const pci::Bar> bars);

struct DrmClient {
  int pid = 0;
  std::string command;
  std::string node;                            // "/dev/dri/card0"
  [[nodiscard]] std::string describe() const;  // "Xorg (pid 812) holds /dev/dri/card0"
};

struct FramebufferConsole {
  std::string framebuffer;  // "fb0"
  std::string vtconsole;    // "vtcon1"
};

struct DisplayUsage {
  std::vector<std::string> drm_nodes;  // "card0", "renderD128"
  std::vector<DrmClient> drm_clients;
  std::vector<std::string> framebuffers;  // the fbdev devices on it: "fb0"
  std::vector<FramebufferConsole> consoles;
  std::vector<FirmwareFramebuffer> firmware_framebuffers;
  std::optional<std::string> gpu_driver;  // its driver, when that is a GPU driver

  [[nodiscard]] bool in_use() const noexcept;
  // One phrase per user: "Xorg (pid 812) holds /dev/dri/card0", ...
  [[nodiscard]] std::vector<std::string> users() const;
  // What frees it, one step per kind of user.
  [[nodiscard]] std::vector<std::string> fixes() const;
  // Users, the driver and the fixes in one sentence for a refusal or a check item.
  [[nodiscard]] std::string describe() const;
};

// The text of /sys/class/vtconsole/vtconN/name of fbcon: "(M) frame buffer device".
bool is_fbcon(std::string_view vtconsole_name) noexcept;

// What uses `dev` (a display device), skipping the process `self_pid`. Unreadable /proc
// entries (other users' processes without root) are skipped.
DisplayUsage probe_display_usage(const HostPaths& paths, const pci::PciDevice& dev, int self_pid);

}  // namespace vfiokit::bind
