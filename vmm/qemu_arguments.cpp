#include "vfiokit/vmm/qemu_arguments.h"

#include <algorithm>
#include <limits>

#include "vfiokit/base/error.h"

namespace vfiokit::vmm {
namespace {

bool is_option(std::string_view argument, std::string_view name) {
  // QEMU takes "-m" and "--m" alike.
  if (argument == name) return true;
  return argument.size() == name.size() + 1 && argument.front() == '-' &&
         argument.substr(1) == name;
}

}  // namespace

std::vector<std::string_view> option_values(const std::vector<std::string>& arguments,
                                            std::string_view name) {
  std::vector<std::string_view> values;
  for (std::size_t i = 0; i + 1 < arguments.size(); ++i) {
    if (is_option(arguments[i], name)) values.emplace_back(arguments[++i]);
  }
  return values;
}

bool has_flag(const std::vector<std::string>& arguments, std::string_view name) {
  return std::any_of(arguments.begin(), arguments.end(),
                     [&](const std::string& argument) { return is_option(argument, name); });
}

std::vector<std::string> split_qemu_options(std::string_view value) {
  std::vector<std::string> items(1);
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != ',') {
      items.back() += value[i];
    } else if (i + 1 < value.size() && value[i + 1] == ',') {
      items.back() += ',';  // ",," is a comma inside the value
      ++i;
    } else {
      items.emplace_back();
    }
  }
  return items;
}

std::optional<std::string> qemu_option(const std::vector<std::string>& items,
                                       std::string_view key) {
  std::optional<std::string> found;
  for (const auto& item : items) {
    const std::size_t eq = item.find('=');
    if (eq != std::string::npos && std::string_view(item).substr(0, eq) == key) {
      found = item.substr(eq + 1);  // the last one wins, as in QEMU
    }
  }
  return found;
}

GuestMachine guest_machine(const std::vector<std::string>& arguments) {
  GuestMachine machine{"pc", MachineFamily::i440fx, false};
  // -M and -machine are one option to QEMU: keep the order they came in.
  std::vector<std::string_view> ordered;
  for (std::size_t i = 0; i + 1 < arguments.size(); ++i) {
    if (is_option(arguments[i], "-M") || is_option(arguments[i], "-machine")) {
      ordered.emplace_back(arguments[++i]);
    }
  }
  for (const auto value : ordered) {
    const auto items = split_qemu_options(value);
    if (!items.empty() && !items.front().empty() && items.front().find('=') == std::string::npos) {
      machine.type = items.front();
    }
    if (const auto type = qemu_option(items, "type")) machine.type = *type;
    if (qemu_option(items, "memory-backend")) machine.has_memory_backend = true;
  }
  const std::string& type = machine.type;
  if (type == "q35" || type.starts_with("pc-q35-")) {
    machine.family = MachineFamily::q35;
  } else if (type == "pc" || type.starts_with("pc-i440fx-")) {
    machine.family = MachineFamily::i440fx;
  } else {
    machine.family = MachineFamily::other;
  }
  return machine;
}

namespace {

Error user_device_error(std::string_view value, const std::string& message) {
  return Error("launch", message)
      .with("device", std::string(value))
      .kind(ErrorKind::usage)
      .hint(
          "write it as -device vfio-pci,host=DDDD:BB:DD.F[,...] so vfiokit knows which device "
          "it is, or leave it out and let vfiokit add it");
}

}  // namespace

std::vector<UserVfioDevice> user_vfio_devices(const std::vector<std::string>& arguments) {
  std::vector<UserVfioDevice> devices;
  for (const auto value : option_values(arguments, "-device")) {
    if (value.starts_with("{")) {
      if (value.find("vfio-pci") != std::string_view::npos) {
        throw user_device_error(value, "vfiokit does not read QEMU's JSON -device syntax");
      }
      continue;
    }
    const auto items = split_qemu_options(value);
    std::string driver = items.front().find('=') == std::string::npos ? items.front() : "";
    if (const auto named = qemu_option(items, "driver")) driver = *named;
    if (driver != "vfio-pci" && driver != "vfio-pci-nohotplug") continue;
    std::optional<pci::Bdf> host;
    if (const auto text = qemu_option(items, "host")) {
      host = pci::parse_bdf(*text);
      if (!host) throw user_device_error(value, "host=" + *text + " is not a PCI address");
    } else if (const auto sysfsdev = qemu_option(items, "sysfsdev")) {
      const std::size_t slash = sysfsdev->find_last_of('/');
      host = pci::parse_bdf(slash == std::string::npos ? *sysfsdev : sysfsdev->substr(slash + 1));
      if (!host) {
        throw user_device_error(value, "sysfsdev=" + *sysfsdev + " does not name a PCI device");
      }
    } else {
      throw user_device_error(value, "a vfio-pci device without host= or sysfsdev=");
    }
    if (std::any_of(devices.begin(), devices.end(),
                    [&](const UserVfioDevice& d) { return d.host == *host; })) {
      throw Error("launch", "QEMU's arguments pass " + host->to_string() + " through twice")
          .with("device", std::string(value))
          .kind(ErrorKind::usage)
          .hint("keep one -device vfio-pci for it");
    }
    devices.push_back({*host, std::string(value)});
  }
  return devices;
}

std::optional<std::uint64_t> parse_qemu_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 15) return std::nullopt;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < digits; ++i)
    value = value * 10 + static_cast<unsigned>(text[i] - '0');
  const std::string_view suffix = text.substr(digits);
  unsigned shift = 0;
  if (suffix.empty() || suffix == "M" || suffix == "m") {
    shift = 20;
  } else if (suffix == "B" || suffix == "b") {
    shift = 0;
  } else if (suffix == "K" || suffix == "k") {
    shift = 10;
  } else if (suffix == "G" || suffix == "g") {
    shift = 30;
  } else if (suffix == "T" || suffix == "t") {
    shift = 40;
  } else {
    return std::nullopt;
  }
  if (shift != 0 && value > (std::numeric_limits<std::uint64_t>::max() >> shift))
    return std::nullopt;
  return value << shift;
}

namespace {

struct MemorySizes {
  std::uint64_t size = 0;
  std::uint64_t maxmem = 0;
};

// The last -m, as QEMU reads it; QEMU's default of 128 MiB without one.
std::optional<MemorySizes> memory_sizes(const std::vector<std::string>& arguments) {
  constexpr std::uint64_t kQemuDefault = std::uint64_t{128} << 20;
  const auto values = option_values(arguments, "-m");
  if (values.empty()) return MemorySizes{kQemuDefault, 0};
  const auto items = split_qemu_options(values.back());
  MemorySizes sizes;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string& item = items[i];
    const std::size_t eq = item.find('=');
    std::string_view key =
        eq == std::string::npos ? std::string_view() : std::string_view(item).substr(0, eq);
    const std::string_view value =
        eq == std::string::npos ? std::string_view(item) : std::string_view(item).substr(eq + 1);
    if (eq == std::string::npos) {
      if (i != 0) return std::nullopt;  // only the first item may be a bare size
      key = "size";
    }
    if (key == "slots") continue;
    if (key != "size" && key != "maxmem") return std::nullopt;
    const auto bytes = parse_qemu_size(value);
    if (!bytes) return std::nullopt;
    (key == "size" ? sizes.size : sizes.maxmem) = *bytes;
  }
  return sizes;
}

}  // namespace

std::optional<std::uint64_t> guest_memory_bytes(const std::vector<std::string>& arguments) {
  const auto sizes = memory_sizes(arguments);
  if (!sizes) return std::nullopt;
  return std::max(sizes->size, sizes->maxmem);
}

std::optional<std::uint64_t> initial_memory_bytes(const std::vector<std::string>& arguments) {
  const auto sizes = memory_sizes(arguments);
  if (!sizes) return std::nullopt;
  return sizes->size;
}

}  // namespace vfiokit::vmm
