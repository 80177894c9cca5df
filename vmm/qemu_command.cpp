#include "vfiokit/vmm/qemu_command.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <tuple>

#include "vfiokit/base/error.h"

namespace vfiokit::vmm {

namespace {

Error launch_usage(const std::string& message) {
  return Error("launch", message).kind(ErrorKind::usage);
}

std::string escape_commas(std::string_view value) {
  std::string out;
  for (char c : value) out += c == ',' ? std::string(",,") : std::string(1, c);
  return out;
}

// "256M", "2G", or bytes: what QEMU's size properties read.
std::string qemu_size(std::uint64_t bytes) {
  constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
  constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
  if (bytes != 0 && bytes % kGiB == 0) return std::to_string(bytes / kGiB) + "G";
  if (bytes != 0 && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + "M";
  return std::to_string(bytes);
}

// QEMU's boolean properties (qapi_bool_parse): on, yes, true, y turn them on.
bool is_on(std::string_view value) {
  return value == "on" || value == "true" || value == "yes" || value == "y";
}

// What vfiokit itself decides for a function: its identity and its place in the guest.
constexpr std::string_view kReservedKeys[] = {"host", "sysfsdev", "driver",
                                              "bus",  "addr",     "multifunction"};

void check_device_options(const QemuDevice& device) {
  const std::string bdf = device.host.to_string();
  std::vector<std::string> keys;
  for (const auto& option : device.options) {
    const std::size_t eq = option.find('=');
    if (eq == 0 || eq == std::string::npos) {
      throw launch_usage("--device-opt for " + bdf + ": '" + option + "' is not KEY=VALUE")
          .hint("give options as KEY=VALUE, e.g. --device-opt " + bdf + ":rombar=0");
    }
    const std::string key = option.substr(0, eq);
    const std::string value = option.substr(eq + 1);
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
      throw launch_usage("--device-opt for " + bdf + " gives " + key + " twice");
    }
    keys.push_back(key);
    if (std::find(std::begin(kReservedKeys), std::end(kReservedKeys), key) !=
        std::end(kReservedKeys)) {
      throw launch_usage("--device-opt " + key + "= is vfiokit's to set for " + bdf)
          .hint("to place the device yourself, write the whole -device vfio-pci,host=" + bdf +
                ",... after --; vfiokit leaves it as written");
    }
    if (key == "x-vga" && is_on(value) && (device.class_code >> 8) != 0x0300) {
      char klass[8];
      std::snprintf(klass, sizeof klass, "%04x", device.class_code >> 8);
      throw launch_usage("x-vga=on for " + bdf + ", which is not a VGA controller (class " + klass +
                         ")")
          .hint(
              "x-vga gives the guest the legacy VGA ranges of a VGA-class GPU (class 0300); "
              "drop it for this device");
    }
    if (key == "rombar" && value != "0" && value != "1") {
      throw launch_usage("rombar=" + value + " for " + bdf + ": rombar is 0 or 1");
    }
  }
}

struct Slot {
  std::vector<const QemuDevice*> functions;  // in function order
};

std::set<unsigned> user_root_port_chassis(const std::vector<std::string>& arguments) {
  std::set<unsigned> used;
  for (const auto value : option_values(arguments, "-device")) {
    const auto items = split_qemu_options(value);
    if (const auto chassis = qemu_option(items, "chassis")) {
      // QEMU reads integers in any base C does: chassis=0x2 is 2.
      char* end = nullptr;
      const unsigned long number = std::strtoul(chassis->c_str(), &end, 0);
      if (end != chassis->c_str() && *end == '\0' && number <= 255) {
        used.insert(static_cast<unsigned>(number));
      }
    }
  }
  return used;
}

// Each function's guest function number: its own when the slot has function 0, else 0, 1, ...
// in order, since a guest looks for functions 1-7 only behind function 0.
std::vector<unsigned> guest_functions(const Slot& slot) {
  std::vector<unsigned> numbers;
  const bool has_zero = slot.functions.front()->host.function == 0;
  for (std::size_t i = 0; i < slot.functions.size(); ++i) {
    numbers.push_back(has_zero ? slot.functions[i]->host.function : static_cast<unsigned>(i));
  }
  return numbers;
}

std::string device_argument(const QemuDevice& device, const std::string& placement) {
  std::string argument = "vfio-pci,host=" + device.host.to_string() + placement;
  for (const auto& option : device.options) {
    const std::size_t eq = option.find('=');
    argument += "," + option.substr(0, eq + 1) + escape_commas(option.substr(eq + 1));
  }
  return argument;
}

void add_devices(QemuCommand& out, const QemuLaunch& launch,
                 const std::vector<UserVfioDevice>& user_devices, bool root_ports) {
  const auto written = [&](const pci::Bdf& bdf) {
    return std::any_of(user_devices.begin(), user_devices.end(),
                       [&](const UserVfioDevice& d) { return d.host == bdf; });
  };
  // Host slot (domain, bus, device) -> its functions that vfiokit places.
  std::map<std::tuple<std::uint32_t, std::uint8_t, std::uint8_t>, Slot> slots;
  for (const auto& device : launch.devices) {
    const auto& bdf = device.host;
    if (written(bdf)) {
      if (!device.options.empty()) {
        throw launch_usage("--device-opt for " + bdf.to_string() +
                           ", whose -device vfio-pci is written in QEMU's arguments")
            .hint("put the options in that -device");
      }
      out.placements.push_back({bdf, "as written in QEMU's arguments"});
      continue;
    }
    check_device_options(device);
    slots[{bdf.domain, bdf.bus, bdf.device}].functions.push_back(&device);
  }
  for (const auto& user : user_devices) {
    const bool bound = std::any_of(launch.devices.begin(), launch.devices.end(),
                                   [&](const QemuDevice& d) { return d.host == user.host; });
    if (!bound) {
      throw launch_usage("QEMU's arguments pass " + user.host.to_string() +
                         " through, but it is not in the IOMMU group vfiokit binds for this "
                         "guest")
          .with("device", user.argument)
          .hint("launch that device instead (its group comes along), or drop its -device");
    }
    for (auto& [key, slot] : slots) {
      if (std::get<0>(key) != user.host.domain || std::get<1>(key) != user.host.bus ||
          std::get<2>(key) != user.host.device) {
        continue;
      }
      throw launch_usage("QEMU's arguments place " + user.host.to_string() + " but not " +
                         slot.functions.front()->host.to_string() +
                         ", a function of the same slot that must sit beside it in the guest")
          .hint("write a -device vfio-pci for " + slot.functions.front()->host.to_string() +
                " too (same bus, same slot), or leave both to vfiokit");
    }
  }
  const std::set<unsigned> used_chassis = user_root_port_chassis(launch.user_arguments);
  unsigned chassis = 1;
  unsigned port = 0;
  unsigned guest_slot = kFirstGuestSlot;
  for (auto& [host_slot, slot] : slots) {
    std::sort(slot.functions.begin(), slot.functions.end(),
              [](const QemuDevice* a, const QemuDevice* b) { return a->host < b->host; });
    const std::vector<unsigned> functions = guest_functions(slot);
    const bool several = slot.functions.size() > 1;
    if (root_ports) {
      while (used_chassis.contains(chassis)) ++chassis;
      if (chassis > 255) {
        throw launch_usage("more host slots than pcie-root-port chassis numbers left")
            .hint("pass fewer devices, or use --flat");
      }
      const std::string id = "vfiokit-rp" + std::to_string(port++);
      out.arguments.insert(out.arguments.end(),
                           {"-device", "pcie-root-port,id=" + id +
                                           ",chassis=" + std::to_string(chassis++) + ",slot=0"});
      for (std::size_t i = 0; i < slot.functions.size(); ++i) {
        std::string placement = ",bus=" + id + ",addr=0." + std::to_string(functions[i]);
        if (several && functions[i] == 0) placement += ",multifunction=on";
        out.arguments.insert(out.arguments.end(),
                             {"-device", device_argument(*slot.functions[i], placement)});
        out.placements.push_back(
            {slot.functions[i]->host,
             "function " + std::to_string(functions[i]) + " behind pcie-root-port " + id});
      }
      continue;
    }
    if (!several) {
      out.arguments.insert(out.arguments.end(),
                           {"-device", device_argument(*slot.functions[0], "")});
      out.placements.push_back({slot.functions[0]->host, "on the root bus, placed by QEMU"});
      continue;
    }
    if (guest_slot > 0x1f) {
      throw Error("QEMU command", "more multifunction devices than guest slots 0x10-0x1f")
          .kind(ErrorKind::usage)
          .hint("pass fewer devices, or place them yourself with -device vfio-pci,addr=...");
    }
    for (std::size_t i = 0; i < slot.functions.size(); ++i) {
      char addr[16];
      std::snprintf(addr, sizeof addr, "0x%x.%u", guest_slot, functions[i]);
      std::string placement = std::string(",addr=") + addr;
      if (functions[i] == 0) placement += ",multifunction=on";
      out.arguments.insert(out.arguments.end(),
                           {"-device", device_argument(*slot.functions[i], placement)});
      out.placements.push_back(
          {slot.functions[i]->host, std::string("on the root bus at slot ") + addr});
    }
    ++guest_slot;
  }
}

void add_memory(QemuCommand& out, const QemuLaunch& launch, const GuestMachine& machine) {
  if (!launch.hugepage_size) return;
  const auto& arguments = launch.user_arguments;
  bool numa_memory = false;
  for (const auto value : option_values(arguments, "-numa")) {
    if (qemu_option(split_qemu_options(value), "memdev")) numa_memory = true;
  }
  if (machine.has_memory_backend || numa_memory || !option_values(arguments, "-mem-path").empty()) {
    throw launch_usage(
        "--hugepages, and QEMU's arguments back the guest's RAM themselves "
        "(-machine memory-backend=, -numa memdev= or -mem-path)")
        .hint("drop one of them");
  }
  const auto size = initial_memory_bytes(arguments);
  if (!size) {
    throw launch_usage("--hugepages needs a guest RAM size QEMU accepts (-m SIZE)")
        .with("m", std::string(option_values(arguments, "-m").back()));
  }
  out.arguments.insert(
      out.arguments.end(),
      {"-object",
       "memory-backend-memfd,id=vfiokit-ram,size=" + qemu_size(*size) +
           ",hugetlb=on,hugetlbsize=" + qemu_size(*launch.hugepage_size) + ",prealloc=on",
       "-machine", "memory-backend=vfiokit-ram"});
}

void add_firmware(QemuCommand& out, const QemuLaunch& launch) {
  if (!launch.uefi) return;
  const auto& arguments = launch.user_arguments;
  bool pflash = !option_values(arguments, "-pflash").empty();
  for (const auto value : option_values(arguments, "-drive")) {
    if (qemu_option(split_qemu_options(value), "if") == "pflash") pflash = true;
  }
  for (const auto* name : {"-machine", "-M"}) {
    for (const auto value : option_values(arguments, name)) {
      const auto items = split_qemu_options(value);
      if (qemu_option(items, "pflash0") || qemu_option(items, "pflash1")) pflash = true;
    }
  }
  if (pflash || !option_values(arguments, "-bios").empty()) {
    throw launch_usage(
        "--firmware uefi, and QEMU's arguments give firmware themselves "
        "(-bios, a pflash drive or -machine pflash0=)")
        .hint("drop one of them");
  }
  out.arguments.insert(
      out.arguments.end(),
      {"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + escape_commas(launch.uefi->code),
       "-drive", "if=pflash,format=raw,unit=1,file=" + escape_commas(launch.uefi->vars)});
}

}  // namespace

QemuCommand build_qemu_command(const QemuLaunch& launch) {
  const auto& arguments = launch.user_arguments;
  const GuestMachine machine = guest_machine(arguments);
  const std::vector<UserVfioDevice> user_devices = user_vfio_devices(arguments);
  QemuCommand out;
  out.arguments.push_back(launch.binary);
  out.arguments.insert(out.arguments.end(), arguments.begin(), arguments.end());
  add_memory(out, launch, machine);
  add_firmware(out, launch);
  if (launch.cpus) {
    if (!option_values(arguments, "-smp").empty()) {
      throw launch_usage("--cpus, and QEMU's arguments have -smp").hint("give the vCPUs once");
    }
    out.arguments.insert(out.arguments.end(), {"-smp", std::to_string(*launch.cpus)});
  }
  if (launch.name) {
    if (!option_values(arguments, "-name").empty()) {
      throw launch_usage("--name, and QEMU's arguments have -name").hint("give the name once");
    }
    // Thread names ("CPU 0/KVM") make the pinning visible in ps and top.
    out.arguments.insert(out.arguments.end(),
                         {"-name", "guest=" + escape_commas(*launch.name) + ",debug-threads=on"});
  }
  add_devices(out, launch, user_devices, machine.family == MachineFamily::q35 && !launch.flat);
  if (launch.qmp_socket) {
    out.arguments.insert(out.arguments.end(), {"-qmp", "unix:" + escape_commas(*launch.qmp_socket) +
                                                           ",server=on,wait=off"});
    if (!has_flag(arguments, "-S")) {
      out.arguments.emplace_back("-S");
      out.paused = true;
    }
  }
  if (launch.run_as) {
    // Numbers, not the name: what was resolved here is what QEMU becomes.
    out.arguments.insert(out.arguments.end(), {"-runas", std::to_string(launch.run_as->uid) + ":" +
                                                             std::to_string(launch.run_as->gid)});
  }
  return out;
}

void check_device_option_files(const std::vector<QemuDevice>& devices) {
  for (const auto& device : devices) {
    for (const auto& option : device.options) {
      if (!option.starts_with("romfile=") || option.size() == 8) continue;  // empty: no ROM
      const std::string path = option.substr(8);
      // A bare name is looked up in QEMU's own data folders (efi-e1000e.rom): QEMU checks it.
      if (path.find('/') == std::string::npos) continue;
      std::optional<Error> error;
      if (::access(path.c_str(), R_OK) != 0) {
        error = Error::from_last_errno("launch");
      } else if (std::error_code ignored; std::filesystem::is_directory(path, ignored)) {
        error = Error("launch", "romfile= names a directory");
      } else {
        continue;
      }
      throw error->with("romfile", path)
          .with("device", device.host.to_string())
          .kind(ErrorKind::usage)
          .hint("give the path of a readable ROM image (`vfiokit rom " + device.host.to_string() +
                " --output FILE` saves the device's own)");
    }
  }
}

DeviceOptionText parse_device_option(std::string_view text) {
  const std::size_t eq = text.find('=');
  const std::size_t colon =
      eq == std::string_view::npos ? std::string_view::npos : text.substr(0, eq).find_last_of(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= text.size()) {
    throw launch_usage("--device-opt wants DEVICE:KEY=VALUE[,KEY=VALUE], not '" +
                       std::string(text) + "'")
        .hint("e.g. --device-opt 0000:01:00.0:romfile=/var/lib/vfiokit/gpu.rom,x-vga=on");
  }
  DeviceOptionText parsed{std::string(text.substr(0, colon)),
                          split_qemu_options(text.substr(colon + 1))};
  for (const auto& option : parsed.options) {
    if (option.empty() || option.front() == '=' || option.find('=') == std::string::npos) {
      throw launch_usage("--device-opt " + std::string(text) + ": '" + option +
                         "' is not KEY=VALUE");
    }
  }
  return parsed;
}

namespace {

Error run_as_error(std::string_view text, const std::string& message) {
  return Error("launch", message)
      .with("run-as", std::string(text))
      .kind(ErrorKind::usage)
      .hint("give --run-as USER, USER:GROUP or UID:GID of an unprivileged account");
}

std::optional<std::uint32_t> parse_id(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  // (uid_t)-1 means "unchanged" to the kernel's set*id calls.
  if (value >= 0xffffffffu) return std::nullopt;
  return static_cast<std::uint32_t>(value);
}

struct Account {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string name;
};

std::optional<Account> find_user(std::string_view text) {
  std::vector<char> buffer(16384);
  struct passwd entry {};
  struct passwd* found = nullptr;
  const std::string key(text);
  if (const auto uid = parse_id(text)) {
    ::getpwuid_r(*uid, &entry, buffer.data(), buffer.size(), &found);
  } else {
    ::getpwnam_r(key.c_str(), &entry, buffer.data(), buffer.size(), &found);
  }
  if (!found) return std::nullopt;
  return Account{found->pw_uid, found->pw_gid, found->pw_name};
}

std::optional<std::uint32_t> find_group(std::string_view text) {
  if (const auto gid = parse_id(text)) return gid;
  std::vector<char> buffer(16384);
  struct group entry {};
  struct group* found = nullptr;
  const std::string key(text);
  ::getgrnam_r(key.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (!found) return std::nullopt;
  return found->gr_gid;
}

}  // namespace

RunAs resolve_run_as(std::string_view text) {
  const std::size_t colon = text.find(':');
  const std::string_view user_text = text.substr(0, colon);
  const std::optional<std::string_view> group_text =
      colon == std::string_view::npos ? std::nullopt
                                      : std::optional<std::string_view>(text.substr(colon + 1));
  if (user_text.empty() || (group_text && group_text->empty())) {
    throw run_as_error(text, "--run-as wants USER[:GROUP], not '" + std::string(text) + "'");
  }
  RunAs run_as;
  const auto uid = parse_id(user_text);
  const auto account = find_user(user_text);
  if (account) {
    run_as = {account->uid, account->gid, account->name};
  } else if (uid && group_text) {
    run_as = {*uid, 0, std::string(user_text)};  // an id with no passwd entry, e.g. in a container
  } else {
    throw run_as_error(text, "there is no user '" + std::string(user_text) + "'");
  }
  if (group_text) {
    const auto gid = find_group(*group_text);
    if (!gid) throw run_as_error(text, "there is no group '" + std::string(*group_text) + "'");
    run_as.gid = *gid;
  }
  if (run_as.uid == 0 || run_as.gid == 0) {
    throw run_as_error(text, "--run-as " + std::string(text) +
                                 " would leave QEMU with root's rights; name an unprivileged "
                                 "user and group");
  }
  return run_as;
}

std::uint64_t run_as_memlock_limit(std::uint64_t guest_memory) noexcept {
  constexpr std::uint64_t kAllowance = std::uint64_t{1} << 30;
  return guest_memory > std::numeric_limits<std::uint64_t>::max() - kAllowance
             ? std::numeric_limits<std::uint64_t>::max()
             : guest_memory + kAllowance;
}

std::string shell_quote(const std::vector<std::string>& arguments) {
  std::string out;
  for (const auto& argument : arguments) {
    if (!out.empty()) out += ' ';
    const bool plain =
        !argument.empty() &&
        argument.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/+@%") ==
            std::string::npos;
    if (plain) {
      out += argument;
      continue;
    }
    out += '\'';
    for (char c : argument) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

}  // namespace vfiokit::vmm
