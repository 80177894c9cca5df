#include "vfiokit/vmm/qemu_command.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <string_view>
#include <tuple>

#include "vfiokit/base/error.h"

namespace vfiokit::vmm {

std::vector<std::string> qemu_command(const std::string& binary,
                                      const std::vector<std::string>& user_arguments,
                                      const std::vector<pci::Bdf>& devices,
                                      const std::optional<RunAs>& run_as) {
  std::vector<std::string> command{binary};
  command.insert(command.end(), user_arguments.begin(), user_arguments.end());
  // Host slot (domain, bus, device) -> its functions, in order.
  std::map<std::tuple<std::uint32_t, std::uint8_t, std::uint8_t>, std::vector<pci::Bdf>> slots;
  for (const auto& bdf : devices) slots[{bdf.domain, bdf.bus, bdf.device}].push_back(bdf);
  unsigned guest_slot = kFirstGuestSlot;
  for (auto& [host_slot, functions] : slots) {
    std::sort(functions.begin(), functions.end());
    if (functions.size() == 1) {
      command.insert(command.end(), {"-device", "vfio-pci,host=" + functions[0].to_string()});
      continue;
    }
    if (guest_slot > 0x1f) {
      throw Error("QEMU command", "more multifunction devices than guest slots 0x10-0x1f")
          .hint("pass fewer devices, or place them yourself with -device vfio-pci,addr=...");
    }
    for (std::size_t i = 0; i < functions.size(); ++i) {
      char addr[16];
      std::snprintf(addr, sizeof addr, "0x%x.%u", guest_slot, functions[i].function);
      std::string device = "vfio-pci,host=" + functions[i].to_string() + ",addr=" + addr;
      if (i == 0) device += ",multifunction=on";
      command.insert(command.end(), {"-device", device});
    }
    ++guest_slot;
  }
  if (run_as) {
    // Numbers, not the name: what was resolved here is what QEMU becomes.
    command.insert(command.end(),
                   {"-runas", std::to_string(run_as->uid) + ":" + std::to_string(run_as->gid)});
  }
  return command;
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

namespace {

// "8G", "512", "1.5G" are not all QEMU's: it takes an integer and one suffix, MiB by default.
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

}  // namespace

std::optional<std::uint64_t> guest_memory_bytes(const std::vector<std::string>& arguments) {
  constexpr std::uint64_t kQemuDefault = std::uint64_t{128} << 20;
  std::optional<std::uint64_t> memory;
  for (std::size_t i = 0; i + 1 < arguments.size(); ++i) {
    if (arguments[i] != "-m" && arguments[i] != "--m") continue;
    // The last -m wins, as in QEMU.
    std::uint64_t largest = 0;
    std::string_view rest = arguments[i + 1];
    bool first = true;
    while (!rest.empty() || first) {
      const std::size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      std::string_view value = item;
      if (const std::size_t eq = item.find('='); eq != std::string_view::npos) {
        const std::string_view key = item.substr(0, eq);
        value = item.substr(eq + 1);
        if (key == "slots") {
          first = false;
          continue;
        }
        if (key != "size" && key != "maxmem") return std::nullopt;
      } else if (!first) {
        return std::nullopt;
      }
      const auto bytes = parse_qemu_size(value);
      if (!bytes) return std::nullopt;
      largest = std::max(largest, *bytes);
      first = false;
    }
    memory = largest;
  }
  return memory.value_or(kQemuDefault);
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
