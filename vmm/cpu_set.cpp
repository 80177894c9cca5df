#include "vfiokit/vmm/cpu_set.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit::vmm {
namespace {

Error bad_list(std::string_view text, std::string_view what, const std::string& why) {
  return Error("parse CPU list", std::string(what) + " '" + std::string(text) + "': " + why)
      .with("list", std::string(text))
      .hint(
          "write CPU numbers and ranges in ascending order, each CPU once, separated by commas: "
          "0-3,8,10-11")
      .kind(ErrorKind::usage);
}

std::optional<unsigned> cpu_number(std::string_view digits) {
  if (digits.empty() || (digits.size() > 1 && digits.front() == '0')) return std::nullopt;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

}  // namespace

CpuList parse_cpu_list(std::string_view text, std::string_view what) {
  if (text.empty()) throw bad_list(text, what, "is empty");
  CpuList cpus;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = text.find(',', pos);
    const std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    if (item.empty()) throw bad_list(text, what, "has an empty item");
    const std::size_t dash = item.find('-');
    const std::string_view first_text = item.substr(0, dash);
    const std::string_view last_text =
        dash == std::string_view::npos ? first_text : item.substr(dash + 1);
    const auto first = cpu_number(first_text);
    const auto last = cpu_number(last_text);
    if (!first || !last) {
      throw bad_list(text, what, "'" + std::string(item) + "' is not a CPU number or a range A-B");
    }
    for (const unsigned cpu : {*first, *last}) {
      if (cpu > kMaxCpu) {
        throw bad_list(text, what,
                       "CPU " + std::to_string(cpu) + " is above " + std::to_string(kMaxCpu));
      }
    }
    if (*last < *first) {
      throw bad_list(text, what, "range '" + std::string(item) + "' runs backwards");
    }
    if (!cpus.empty() && *first <= cpus.back()) {
      throw bad_list(text, what,
                     "'" + std::string(item) + "' is not above CPU " + std::to_string(cpus.back()) +
                         " (ascending, each CPU once)");
    }
    for (unsigned cpu = *first; cpu <= *last; ++cpu) cpus.push_back(cpu);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return cpus;
}

std::string format_cpu_list(std::vector<unsigned> cpus) {
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  std::vector<std::string> items;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    items.push_back(j == i ? std::to_string(cpus[i])
                           : std::to_string(cpus[i]) + "-" + std::to_string(cpus[j]));
    i = j + 1;
  }
  return join(items, ",");
}

CpuList online_cpus(const HostPaths& paths) {
  const std::filesystem::path file = paths.sys / "devices/system/cpu/online";
  const auto line = read_line_if_exists(file);
  if (!line) {
    throw Error("read online CPUs", "the kernel does not say which CPUs are online")
        .with("path", file.string());
  }
  try {
    return parse_cpu_list(*line, file.string());
  } catch (const Error& e) {
    throw Error("read online CPUs", e.message()).with("path", file.string());
  }
}

void check_cpu_pinning(unsigned vcpus, const CpuList& pin, const CpuList& emulator_pin,
                       const CpuList& online) {
  const std::string online_text = format_cpu_list(online);
  if (pin.size() != vcpus) {
    throw Error("check CPU pinning", "--pin names " + std::to_string(pin.size()) + " CPUs for " +
                                         std::to_string(vcpus) +
                                         " vCPUs (--cpus): vCPU i runs on the i-th CPU, so it "
                                         "needs exactly one per vCPU")
        .with("pin", format_cpu_list(pin))
        .with("cpus", std::to_string(vcpus))
        .with("online", online_text)
        .hint("give --pin " + std::to_string(vcpus) + " CPUs, from the online ones: " + online_text)
        .kind(ErrorKind::usage);
  }
  for (const auto& [option, list] : {std::pair<std::string_view, const CpuList&>{"--pin", pin},
                                     {"--emulator-pin", emulator_pin}}) {
    for (const unsigned cpu : list) {
      if (std::binary_search(online.begin(), online.end(), cpu)) continue;
      throw Error("check CPU pinning", std::string(option) + " names CPU " + std::to_string(cpu) +
                                           ", which is not online (online: " + online_text + ")")
          .with(std::string(option.substr(2)), format_cpu_list(list))
          .with("cpu", std::to_string(cpu))
          .with("online", online_text)
          .hint("choose CPUs from " + online_text + " (sys/devices/system/cpu/online)")
          .kind(ErrorKind::usage);
    }
  }
}

}  // namespace vfiokit::vmm
