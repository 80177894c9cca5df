// The device plugin's config file (k8s/config.h): any bytes as the file a ConfigMap carries.
//
// Invariants: parsing fails only with vfiokit::Error, a usage error of "read device-plugin
// config" that names a key and says what to do; a config that parses has at least one resource,
// unique names of the DOMAIN/NAME form, every resource selects something, no selector matches
// everything, class matches are left-aligned under one of the three masks; and the config
// written back as JSON parses to the same config.
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/k8s/config.h"
#include "vfiokit/k8s/names.h"

namespace vfiokit::k8s {
namespace {

std::string hex4(std::uint32_t value, int digits) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, value >>= 4) {
    text[static_cast<std::size_t>(i)] = kDigits[value & 0xf];
  }
  return text;
}

// The config as its file would say it.
std::string render(const PluginConfig& config) {
  nlohmann::json resources = nlohmann::json::array();
  for (const auto& resource : config.resources) {
    nlohmann::json devices = nlohmann::json::array();
    for (const auto& match : resource.devices) {
      devices.push_back((match.vendor ? hex4(*match.vendor, 4) : "") + ":" +
                        (match.device ? hex4(*match.device, 4) : ""));
    }
    nlohmann::json classes = nlohmann::json::array();
    for (const auto& match : resource.classes) {
      const int digits = match.mask == 0xff0000 ? 2 : match.mask == 0xffff00 ? 4 : 6;
      classes.push_back(hex4(match.value >> (4 * (6 - digits)), digits));
    }
    nlohmann::json bdfs = nlohmann::json::array();
    for (const auto& bdf : resource.bdfs) bdfs.push_back(bdf.to_string());
    resources.push_back(
        {{"name", resource.name}, {"devices", devices}, {"classes", classes}, {"bdfs", bdfs}});
  }
  return nlohmann::json{{"resources", resources}, {"keepBound", config.keep_bound}}.dump();
}

void check(const PluginConfig& config) {
  FUZZ_CHECK(!config.resources.empty());
  std::set<std::string> names;
  std::set<std::string> sockets;
  std::set<std::string> variables;
  for (const auto& resource : config.resources) {
    FUZZ_CHECK(names.insert(resource.name).second);
    // Two resources must never share a socket or KubeVirt's variable (one would serve or
    // name the other's devices), and the socket must fit under kubelet's default directory.
    FUZZ_CHECK(sockets.insert(plugin_socket_name(resource.name)).second);
    FUZZ_CHECK(variables.insert(pci_resource_variable(resource.name)).second);
    const std::size_t slash = resource.name.find('/');
    FUZZ_CHECK(slash != std::string::npos && slash > 0 && slash + 1 < resource.name.size());
    FUZZ_CHECK(resource.name.find('/', slash + 1) == std::string::npos);
    FUZZ_CHECK(!resource.devices.empty() || !resource.classes.empty() || !resource.bdfs.empty());
    for (const auto& match : resource.devices) FUZZ_CHECK(match.vendor || match.device);
    for (const auto& match : resource.classes) {
      FUZZ_CHECK(match.mask == 0xff0000 || match.mask == 0xffff00 || match.mask == 0xffffff);
      FUZZ_CHECK((match.value & ~match.mask) == 0);
    }
    for (const auto& bdf : resource.bdfs) FUZZ_CHECK(bdf.device < 32 && bdf.function < 8);
  }
}

}  // namespace
}  // namespace vfiokit::k8s

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::k8s;
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  PluginConfig config;
  try {
    config = parse_plugin_config(text);
  } catch (const vfiokit::Error& e) {
    FUZZ_CHECK(e.operation() == "read device-plugin config");
    FUZZ_CHECK(e.kind() == vfiokit::ErrorKind::usage);
    FUZZ_CHECK(!e.context_value("key").empty());
    FUZZ_CHECK(!e.hint().empty());
    return 0;
  }
  check(config);
  FUZZ_CHECK(parse_plugin_config(render(config)) == config);
  return 0;
}
