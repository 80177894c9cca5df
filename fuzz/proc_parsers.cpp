// The /proc parsers behind bind's usage checks (bind/usage.h): mountinfo, IPv4 and IPv6 routes,
// swaps. Any text, and files built from fuzzed fields in the kernel's layout.
//
// Invariants: every name and field returned is a non-empty word without whitespace; route
// parsers return each interface once, and the IPv6 one never "lo" nor an interface that only
// has link-local or multicast routes; nothing comes from a header line; built files parse back
// to exactly the fields they were built from.
#include <algorithm>
#include <set>
#include <string_view>

#include "fuzz/fuzz.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/usage.h"

namespace vfiokit::bind {
namespace {

bool word(std::string_view text) {
  return !text.empty() && text.find_first_of(" \t\n") == std::string_view::npos;
}

void check_names(const std::vector<std::string>& names, bool unique) {
  for (const auto& name : names) FUZZ_CHECK(word(name));
  if (unique) FUZZ_CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
}

std::string token(FuzzedDataProvider& data, std::string_view chars, std::size_t max) {
  std::string text(data.ConsumeIntegralInRange<std::size_t>(1, max), 'x');
  for (char& c : text) c = chars[data.ConsumeIntegralInRange<std::size_t>(0, chars.size() - 1)];
  return text;
}
constexpr std::string_view kPathChars = "abcdefghijklmnopqrstuvwxyz0123456789/._\\";
constexpr std::string_view kHex = "0123456789abcdef";

void raw(std::string_view text) {
  const auto mounts = parse_mountinfo(text);
  for (const auto& mount : mounts) {
    FUZZ_CHECK(word(mount.device_number) && word(mount.mount_point));
    if (!mount.source.empty()) FUZZ_CHECK(word(mount.source));
  }
  FUZZ_CHECK(mounts.size() <= split_lines(text).size());
  check_names(parse_ipv4_route_interfaces(text), true);
  const auto ipv6 = parse_ipv6_route_interfaces(text);
  check_names(ipv6, true);
  FUZZ_CHECK(std::find(ipv6.begin(), ipv6.end(), "lo") == ipv6.end());
  check_names(parse_swap_devices(text), false);
  // The first line is a header in /proc/net/route and /proc/swaps.
  const auto lines = split_lines(text);
  if (lines.size() <= 1) {
    FUZZ_CHECK(parse_ipv4_route_interfaces(text).empty() && parse_swap_devices(text).empty());
  }
}

void built(FuzzedDataProvider& data) {
  // mountinfo: id parent major:minor root mount-point options [optional...] - fstype source super
  std::string mountinfo;
  std::vector<MountEntry> mounts;
  // route and ipv6_route, swaps
  std::string route =
      "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n";
  std::vector<std::string> ipv4;
  std::string ipv6_route;
  std::vector<std::string> ipv6;
  std::string swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
  std::vector<std::string> swap_devices;
  auto add_unique = [](std::vector<std::string>& names, const std::string& name) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  };
  while (data.remaining_bytes() > 0) {
    switch (data.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: {
        MountEntry m{std::to_string(data.ConsumeIntegral<std::uint8_t>()) + ":" +
                         std::to_string(data.ConsumeIntegral<std::uint8_t>()),
                     token(data, kPathChars, 30), token(data, kPathChars, 20)};
        mountinfo += "36 35 " + m.device_number + " / " + m.mount_point + " rw,noatime";
        const auto optional_fields = data.ConsumeIntegralInRange<int>(0, 3);
        for (int i = 0; i < optional_fields; ++i) mountinfo += " shared:" + std::to_string(i);
        mountinfo += " - ext4 " + m.source + " rw\n";
        mounts.push_back(m);
        break;
      }
      case 1: {
        const std::string name = token(data, "abcdefghijklmnopqrstuvwxyz0123456789", 15);
        route += name + "\t0000FEA9\t00000000\t0001\t0\t0\t1000\t0000FFFF\t0\t0\t0\n";
        add_unique(ipv4, name);
        break;
      }
      case 2: {
        const std::string name = token(data, "abcdefghijklmnopqrstuvwxyz0123456789", 15);
        std::string destination(32, '0');
        for (char& c : destination) c = kHex[data.ConsumeIntegralInRange<std::size_t>(0, 15)];
        ipv6_route += destination + " 40 " + std::string(32, '0') + " 00 " + std::string(32, '0') +
                      " 00000100 00000001 00000000 00000001 " + name + "\n";
        const bool link_local = destination.starts_with("fe8") || destination.starts_with("fe9") ||
                                destination.starts_with("fea") || destination.starts_with("feb");
        if (!link_local && !destination.starts_with("ff") && name != "lo") add_unique(ipv6, name);
        break;
      }
      default: {
        const std::string device = token(data, kPathChars, 30);
        swaps += device + "\tpartition\t1048572\t0\t-2\n";
        swap_devices.push_back(device);
        break;
      }
    }
  }
  const auto parsed_mounts = parse_mountinfo(mountinfo);
  FUZZ_CHECK(parsed_mounts.size() == mounts.size());
  for (std::size_t i = 0; i < mounts.size(); ++i) {
    FUZZ_CHECK(parsed_mounts[i].device_number == mounts[i].device_number);
    FUZZ_CHECK(parsed_mounts[i].mount_point == mounts[i].mount_point);
    FUZZ_CHECK(parsed_mounts[i].source == mounts[i].source);
  }
  FUZZ_CHECK(parse_ipv4_route_interfaces(route) == ipv4);
  FUZZ_CHECK(parse_ipv6_route_interfaces(ipv6_route) == ipv6);
  FUZZ_CHECK(parse_swap_devices(swaps) == swap_devices);
}

}  // namespace
}  // namespace vfiokit::bind

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size > 0 && bytes[0] == 0xb1) {  // built files
    FuzzedDataProvider data(bytes + 1, size - 1);
    vfiokit::bind::built(data);
    return 0;
  }
  vfiokit::bind::raw(std::string_view(reinterpret_cast<const char*>(bytes), size));
  return 0;
}
