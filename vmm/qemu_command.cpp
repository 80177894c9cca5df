#include "vmm/qemu_command.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <tuple>

#include "base/error.h"

namespace vfiokit::vmm {

std::vector<std::string> qemu_command(const std::string& binary,
                                      const std::vector<std::string>& user_arguments,
                                      const std::vector<pci::Bdf>& devices) {
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
  return command;
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
