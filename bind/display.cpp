#include "vfiokit/bind/display.h"

#include <algorithm>
#include <array>
#include <filesystem>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/usage.h"

namespace vfiokit::bind {
namespace fs = std::filesystem;
namespace {

// A /proc or sysfs file that may vanish or be unreadable: empty then.
std::string read_text_or_empty(const fs::path& path) {
  try {
    return read_file_if_exists(path).value_or("");
  } catch (const Error&) {
    return {};
  }
}

std::optional<IomemRange> parse_iomem_line(std::string_view line) {
  const std::size_t indent = line.find_first_not_of(' ');
  if (indent == std::string_view::npos) return std::nullopt;
  const std::size_t colon = line.find(" : ", indent);
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view range = line.substr(indent, colon - indent);
  const std::size_t dash = range.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const auto start = parse_uint(range.substr(0, dash), 16);
  const auto end = parse_uint(range.substr(dash + 1), 16);
  // parse_uint takes "0x" and surrounding blanks; /proc/iomem has neither.
  if (!start || !end || *end < *start || range.find_first_of(" \txX") != std::string_view::npos) {
    return std::nullopt;
  }
  IomemRange out;
  out.start = *start;
  out.end = *end;
  out.name = std::string(line.substr(colon + 3));
  out.depth = static_cast<unsigned>(indent / 2);
  return out;
}

std::string range_text(std::uint64_t start, std::uint64_t end) {
  return hex(start) + "-" + hex(end);
}

}  // namespace

std::vector<IomemRange> parse_iomem(std::string_view text) {
  std::vector<IomemRange> ranges;
  std::vector<std::size_t> open;  // open[d]: index of the latest range at depth d
  for (const std::string_view line : split_lines(text)) {
    const std::size_t indent = line.find_first_not_of(' ');
    const std::size_t depth = indent == std::string_view::npos ? 0 : indent / 2;
    auto range = parse_iomem_line(line);
    // A line deeper than its parent's level has lost its parent (or the parent did not parse).
    if (depth > open.size()) continue;
    open.resize(depth);
    if (!range) continue;  // nothing nests below it either: open stays short
    if (depth > 0) range->parent = open[depth - 1];
    open.push_back(ranges.size());
    ranges.push_back(std::move(*range));
  }
  return ranges;
}

bool is_firmware_framebuffer(std::string_view name) noexcept {
  static constexpr std::array<std::string_view, 5> kNames = {"efifb", "simplefb", "simpledrm",
                                                             "vesafb", "BOOTFB"};
  if (std::find(kNames.begin(), kNames.end(), name) != kNames.end()) return true;
  return name.starts_with("simple-framebuffer") || name.starts_with("efi-framebuffer") ||
         name.starts_with("vesa-framebuffer");
}

bool is_gpu_driver(std::string_view driver) noexcept {
  static constexpr std::array<std::string_view, 21> kDrivers = {
      "amdgpu",    "radeon",    "nouveau", "nvidia",     "i915",     "xe",          "ast",
      "mgag200",   "qxl",       "bochs",   "bochs-drm",  "cirrus",   "cirrus-qemu", "vmwgfx",
      "vboxvideo", "hibmc-drm", "gma500",  "gma500_gfx", "nvidiafb", "radeonfb",    "sisfb"};
  return std::find(kDrivers.begin(), kDrivers.end(), driver) != kDrivers.end();
}

std::string FirmwareFramebuffer::describe() const {
  std::string where = bar ? " in BAR" + std::to_string(*bar) : std::string();
  if (start == 0 && end == 0) return name + " claims part of its memory" + where;
  return name + " claims " + range_text(start, end) + where;
}

std::vector<FirmwareFramebuffer> firmware_framebuffers_on(std::span<const IomemRange> iomem,
                                                          const pci::Bdf& bdf,
                                                          std::span<const pci::Bar> bars) {
  const std::string address = bdf.to_string();
  std::vector<FirmwareFramebuffer> found;
  for (const auto& range : iomem) {
    if (!is_firmware_framebuffer(range.name)) continue;
    FirmwareFramebuffer fb{range.name, range.start, range.end, std::nullopt};
    const bool known = range.end != 0;
    for (const auto& bar : bars) {
      if (!known || bar.kind == pci::BarKind::io || bar.size == 0) continue;
      const std::uint64_t last = bar.address + (bar.size - 1);
      if (last >= bar.address && range.start >= bar.address && range.end <= last) {
        fb.bar = bar.index;
        break;
      }
    }
    bool nested = false;
    // Parents come earlier in the list, so the walk ends; the bound guards a damaged list.
    std::optional<std::size_t> up = range.parent;
    for (std::size_t steps = 0; up && *up < iomem.size() && steps < iomem.size(); ++steps) {
      if (iomem[*up].name == address) {
        nested = true;
        break;
      }
      up = iomem[*up].parent;
    }
    if (fb.bar || nested) found.push_back(std::move(fb));
  }
  return found;
}

std::string DrmClient::describe() const {
  return command + " (pid " + std::to_string(pid) + ") holds " + node;
}

bool DisplayUsage::in_use() const noexcept {
  return !drm_clients.empty() || !consoles.empty() || !firmware_framebuffers.empty();
}

std::vector<std::string> DisplayUsage::users() const {
  std::vector<std::string> out;
  for (const auto& client : drm_clients) out.push_back(client.describe());
  for (const auto& console : consoles) {
    out.push_back("the framebuffer console (" + console.vtconsole + ") is bound to " +
                  console.framebuffer);
  }
  for (const auto& fb : firmware_framebuffers) out.push_back(fb.describe());
  return out;
}

std::vector<std::string> DisplayUsage::fixes() const {
  std::vector<std::string> out;
  if (!drm_clients.empty()) {
    out.emplace_back(
        "stop the display server and what else holds its nodes (systemctl stop "
        "display-manager)");
  }
  std::vector<std::string> vtcons;
  for (const auto& console : consoles) {
    if (std::find(vtcons.begin(), vtcons.end(), console.vtconsole) == vtcons.end()) {
      vtcons.push_back(console.vtconsole);
      out.push_back("echo 0 > /sys/class/vtconsole/" + console.vtconsole + "/bind");
    }
  }
  bool efifb = false;
  bool vesafb = false;
  bool sysfb = false;
  for (const auto& fb : firmware_framebuffers) {
    if (fb.name == "efifb" || fb.name.starts_with("efi-framebuffer")) {
      efifb = true;
    } else if (fb.name == "vesafb" || fb.name.starts_with("vesa-framebuffer")) {
      vesafb = true;
    } else {
      sysfb = true;
    }
  }
  if (efifb) out.emplace_back("boot with video=efifb:off");
  if (vesafb) out.emplace_back("boot with video=vesafb:off");
  if (sysfb) out.emplace_back("boot with initcall_blacklist=sysfb_init");
  return out;
}

std::string DisplayUsage::describe() const {
  std::string text = join(users(), "; ");
  if (gpu_driver) text += (text.empty() ? "" : "; ") + std::string("its driver is ") + *gpu_driver;
  const auto steps = fixes();
  if (!steps.empty()) text += ". To free it: " + join(steps, "; ");
  return text;
}

bool is_fbcon(std::string_view vtconsole_name) noexcept {
  return vtconsole_name.find("frame buffer device") != std::string_view::npos;
}

DisplayUsage probe_display_usage(const HostPaths& paths, const pci::PciDevice& dev, int self_pid) {
  DisplayUsage usage;
  const std::string address = dev.bdf.to_string();
  const fs::path dir = pci::device_dir(paths, dev.bdf);
  if (dev.driver && is_gpu_driver(*dev.driver)) usage.gpu_driver = dev.driver;

  std::vector<std::string> nodes;  // as fd links name them
  for (const auto& name : list_dir(dir / "drm")) {
    // card0 and renderD128; connectors (card0-DP-1) live inside card0 on current kernels.
    if ((name.starts_with("card") || name.starts_with("renderD")) &&
        name.find('-') == std::string::npos) {
      usage.drm_nodes.push_back(name);
      nodes.push_back("/dev/dri/" + name);
    }
  }
  // NVIDIA's own driver has no DRM node of its own without modeset: /dev/nvidiaN, N being the
  // "Device Minor" it reports for this GPU.
  const std::string info =
      read_text_or_empty(paths.proc / "driver/nvidia/gpus" / address / "information");
  if (const auto minor = find_key_value(info, "Device Minor"); minor && parse_uint(*minor)) {
    usage.drm_nodes.push_back("nvidia" + std::string(trim(*minor)));
    nodes.push_back("/dev/nvidia" + std::string(trim(*minor)));
  }
  if (!nodes.empty()) {
    for_each_open_fd(
        paths.proc, self_pid, [&](int pid, const fs::path&, const std::string& target) {
          if (std::find(nodes.begin(), nodes.end(), target) == nodes.end()) return;
          const bool seen =
              std::any_of(usage.drm_clients.begin(), usage.drm_clients.end(),
                          [&](const DrmClient& c) { return c.pid == pid && c.node == target; });
          if (seen) return;
          const std::string comm = read_text_or_empty(paths.proc / std::to_string(pid) / "comm");
          usage.drm_clients.push_back({pid, comm.empty() ? "?" : std::string(trim(comm)), target});
        });
  }

  const fs::path graphics = paths.sys / "class/graphics";
  for (const auto& name : list_dir(graphics)) {
    if (!name.starts_with("fb")) continue;
    if (read_link_name(graphics / name / "device") == address) {
      usage.framebuffers.push_back(name);
    }
  }
  if (!usage.framebuffers.empty()) {
    const fs::path vtconsoles = paths.sys / "class/vtconsole";
    for (const auto& vtcon : list_dir(vtconsoles)) {
      const bool bound = read_line_if_exists(vtconsoles / vtcon / "bind") == "1";
      if (!bound || !is_fbcon(read_line_if_exists(vtconsoles / vtcon / "name").value_or(""))) {
        continue;
      }
      for (const auto& fb : usage.framebuffers) usage.consoles.push_back({fb, vtcon});
    }
  }

  const auto iomem = parse_iomem(read_text_or_empty(paths.proc / "iomem"));
  usage.firmware_framebuffers = firmware_framebuffers_on(iomem, dev.bdf, dev.bars);
  return usage;
}

}  // namespace vfiokit::bind
