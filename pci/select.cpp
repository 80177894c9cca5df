#include "vfiokit/pci/select.h"

extern "C" {
#include <pci/pci.h>
}

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::pci {
namespace fs = std::filesystem;
namespace {

// PCI Code and ID Assignment Specification, base classes; names as lspci users say them.
constexpr std::array kClassNames = {
    ClassName{"unclassified", 0x00}, ClassName{"storage", 0x01},
    ClassName{"network", 0x02},      ClassName{"display", 0x03},
    ClassName{"multimedia", 0x04},   ClassName{"memory", 0x05},
    ClassName{"bridge", 0x06},       ClassName{"communication", 0x07},
    ClassName{"system", 0x08},       ClassName{"input", 0x09},
    ClassName{"docking", 0x0a},      ClassName{"processor", 0x0b},
    ClassName{"serial-bus", 0x0c},   ClassName{"wireless", 0x0d},
    ClassName{"intelligent", 0x0e},  ClassName{"satellite", 0x0f},
    ClassName{"encryption", 0x10},   ClassName{"signal-processing", 0x11},
    ClassName{"accelerator", 0x12},  ClassName{"instrumentation", 0x13},
    ClassName{"coprocessor", 0x40},
};

// libpci's parsers write into the string they parse and keep -1 for "any".
pci_filter parse_with_libpci(std::string_view text, std::string_view option,
                             char* (*parse)(pci_filter*, char*)) {
  pci_filter filter{};
  pci_filter_init(nullptr, &filter);
  std::string buffer(text);
  if (const char* problem = parse(&filter, buffer.data())) {
    throw Error("select devices", std::string(option) + " '" + std::string(text) + "': " + problem)
        .kind(ErrorKind::usage)
        .hint(option == "-s" ? "-s takes [[domain:]bus:][slot][.func] in hex, as lspci does, "
                               "e.g. -s 01:00 or -s 0000:01:00.1"
                             : "-d takes [vendor]:[device][:class[:prog-if]] in hex, as lspci "
                               "does, e.g. -d 10de: or -d ::0300");
  }
  return filter;
}

template <typename T>
std::optional<T> unless_any(int value) {
  if (value < 0) return std::nullopt;
  return static_cast<T>(value);
}

std::string known_class_names() {
  std::vector<std::string> names;
  for (const auto& c : kClassNames) names.emplace_back(c.name);
  return join(names, ", ");
}

}  // namespace

bool DeviceFilter::selects_everything() const noexcept {
  return !domain && !bus && !slot && !function && !vendor_id && !device_id && !class_id &&
         !prog_if && base_classes.empty();
}

void parse_slot_filter(std::string_view text, DeviceFilter& filter) {
  const pci_filter parsed = parse_with_libpci(text, "-s", pci_filter_parse_slot);
  if (auto v = unless_any<std::uint32_t>(parsed.domain)) filter.domain = v;
  if (auto v = unless_any<std::uint8_t>(parsed.bus)) filter.bus = v;
  if (auto v = unless_any<std::uint8_t>(parsed.slot)) filter.slot = v;
  if (auto v = unless_any<std::uint8_t>(parsed.func)) filter.function = v;
}

void parse_id_filter(std::string_view text, DeviceFilter& filter) {
  const pci_filter parsed = parse_with_libpci(text, "-d", pci_filter_parse_id);
  if (auto v = unless_any<std::uint16_t>(parsed.vendor)) filter.vendor_id = v;
  if (auto v = unless_any<std::uint16_t>(parsed.device)) filter.device_id = v;
  if (auto v = unless_any<std::uint16_t>(parsed.device_class)) {
    filter.class_id = v;
    filter.class_mask = static_cast<std::uint16_t>(parsed.device_class_mask);
  }
  if (auto v = unless_any<std::uint8_t>(parsed.prog_if)) filter.prog_if = v;
}

std::span<const ClassName> class_names() noexcept { return kClassNames; }

std::uint8_t parse_base_class(std::string_view text) {
  for (const auto& c : kClassNames) {
    if (c.name == text) return c.base_class;
  }
  std::string_view digits = text;
  if (digits.starts_with("0x") || digits.starts_with("0X")) digits.remove_prefix(2);
  if (!digits.empty() && digits.size() <= 2) {
    if (auto value = parse_uint(digits, 16)) return static_cast<std::uint8_t>(*value);
  }
  throw Error("select devices", "--class '" + std::string(text) + "' is not a device class")
      .kind(ErrorKind::usage)
      .hint("use one of " + known_class_names() + ", or a base class in hex (e.g. 03)");
}

bool matches(const DeviceFilter& filter, const Bdf& bdf, std::uint16_t vendor_id,
             std::uint16_t device_id, std::uint32_t class_code) noexcept {
  const auto differs = [](const auto& wanted, auto actual) { return wanted && *wanted != actual; };
  if (differs(filter.domain, bdf.domain) || differs(filter.bus, bdf.bus) ||
      differs(filter.slot, bdf.device) || differs(filter.function, bdf.function) ||
      differs(filter.vendor_id, vendor_id) || differs(filter.device_id, device_id) ||
      differs(filter.prog_if, static_cast<std::uint8_t>(class_code))) {
    return false;
  }
  const auto class_id = static_cast<std::uint16_t>(class_code >> 8);
  if (filter.class_id && ((class_id ^ *filter.class_id) & filter.class_mask) != 0) return false;
  const auto base_class = static_cast<std::uint8_t>(class_code >> 16);
  return filter.base_classes.empty() ||
         std::find(filter.base_classes.begin(), filter.base_classes.end(), base_class) !=
             filter.base_classes.end();
}

bool matches(const DeviceFilter& filter, const PciDevice& device) noexcept {
  return matches(filter, device.bdf, device.vendor_id, device.device_id, device.class_code);
}

Bdf resolve_device_name(const HostPaths& paths, std::string_view text) {
  if (auto bdf = parse_bdf(text)) return *bdf;
  const bool could_be_interface = !text.empty() && text.size() < 16 && text != "." &&
                                  text != ".." && text.find('/') == std::string_view::npos;
  std::error_code ec;
  const fs::path link = paths.sys / "class/net" / std::string(could_be_interface ? text : "");
  const fs::path target = could_be_interface ? fs::read_symlink(link, ec) : fs::path();
  if (!could_be_interface || ec) {
    throw Error("select devices",
                "'" + std::string(text) + "' is neither a PCI address nor a network interface")
        .kind(ErrorKind::usage)
        .hint(
            "write the address as DOMAIN:BUS:DEVICE.FUNCTION in hex, e.g. 0000:01:00.0 (see "
            "`vfiokit list`), or name an interface that `ip link` shows");
  }
  // sys/class/net/NAME -> ../../devices/pci0000:00/0000:00:03.0/net/NAME: the folder above
  // "net" is the interface's device.
  const fs::path device_dir = target.parent_path().parent_path();
  const std::string device = device_dir.filename().string();
  const auto bdf = parse_bdf(device);
  if (!bdf || !pci_device_exists(paths, *bdf)) {
    const bool is_virtual = target.string().find("/virtual/") != std::string::npos;
    throw Error("select devices",
                "network interface " + std::string(text) +
                    (is_virtual ? " is virtual (a bridge, bond, tunnel or loopback): no PCI "
                                  "device to pass through"
                                : " is not on a PCI function (its device is " + device + ")"))
        .kind(ErrorKind::usage)
        .with("interface", std::string(text))
        .hint(
            "pass the PCI device the interface sits on; `vfiokit list --class network` "
            "shows them");
  }
  return *bdf;
}

std::vector<std::string> network_interfaces_of(const HostPaths& paths, const Bdf& bdf) {
  return list_dir(paths.sys / "bus/pci/devices" / bdf.to_string() / "net");
}

}  // namespace vfiokit::pci
