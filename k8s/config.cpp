#include "vfiokit/k8s/config.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "vfiokit/base/error.h"
#include "vfiokit/k8s/names.h"

namespace vfiokit::k8s {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kOperation = "read device-plugin config";
constexpr std::string_view kExample =
    R"({"resources": [{"name": "vfiokit.io/nvme", "devices": ["1b36:0010"]}]})";

// Every mistake names the key it is under ("resources[1].classes[0]") and what would be right.
[[noreturn]] void refuse(const std::string& key, const std::string& message,
                         const std::string& fix) {
  throw Error(std::string(kOperation), key.empty() ? message : key + ": " + message)
      .with("key", key.empty() ? "(document)" : key)
      .hint(fix)
      .kind(ErrorKind::usage);
}

std::string json_string(std::string_view text) {
  // The text came from the file: shown as a JSON string, so a control character or a stray byte
  // cannot garble the message.
  return Json(std::string(text)).dump(-1, ' ', true, Json::error_handler_t::replace);
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// 1..digits hex digits; nullopt for anything else.
std::optional<std::uint32_t> parse_hex(std::string_view text, std::size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return std::nullopt;
  std::uint32_t value = 0;
  for (char c : text) {
    const int digit = hex_value(c);
    if (digit < 0) return std::nullopt;
    value = value << 4 | static_cast<std::uint32_t>(digit);
  }
  return value;
}

// RFC 1123 DNS subdomain, as Kubernetes' IsDNS1123Subdomain checks a resource name's prefix.
std::string dns_subdomain_problem(std::string_view domain) {
  if (domain.empty()) return "the domain before '/' is empty";
  if (domain.size() > 253) return "the domain is longer than 253 characters";
  std::size_t start = 0;
  while (start <= domain.size()) {
    const std::size_t dot = std::min(domain.find('.', start), domain.size());
    const std::string_view label = domain.substr(start, dot - start);
    if (label.empty()) return "the domain has an empty label (two dots, or a dot at an end)";
    if (label.size() > 63) return "a label of the domain is longer than 63 characters";
    for (char c : label) {
      if (!is_lower_alnum(c) && c != '-') {
        return "the domain may hold only lower-case letters, digits, '-' and '.'";
      }
    }
    if (label.front() == '-' || label.back() == '-') {
      return "a label of the domain starts or ends with '-'";
    }
    start = dot + 1;
  }
  return {};
}

// Kubernetes' qualified name part: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63.
std::string qualified_name_problem(std::string_view name) {
  if (name.empty()) return "the name after '/' is empty";
  if (name.size() > 63) return "the name after '/' is longer than 63 characters";
  for (char c : name) {
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') {
      return "the name after '/' may hold only letters, digits, '-', '_' and '.'";
    }
  }
  if (!is_alnum(name.front()) || !is_alnum(name.back())) {
    return "the name after '/' must start and end with a letter or digit";
  }
  return {};
}

bool is_or_under(std::string_view domain, std::string_view reserved) {
  return domain == reserved || (domain.size() > reserved.size() && domain.ends_with(reserved) &&
                                domain[domain.size() - reserved.size() - 1] == '.');
}

// What kubelet's device manager refuses at registration (v1helper.IsExtendedResourceName): a
// name without a domain or in the kubernetes.io namespace is a native resource, "requests." is
// the quota prefix, and the rest must be a qualified name. k8s.io is Kubernetes' own as well.
void check_resource_name(const std::string& key, const std::string& name) {
  const std::string fix =
      "name it DOMAIN/NAME with a domain of your own, e.g. \"vfiokit.io/nvme\" (kubelet accepts "
      "only such extended resource names from a device plugin)";
  const std::size_t slash = name.find('/');
  if (slash == std::string::npos) {
    refuse(key, json_string(name) + " has no domain: kubelet takes it for a native resource", fix);
  }
  const std::string_view domain = std::string_view(name).substr(0, slash);
  const std::string_view rest = std::string_view(name).substr(slash + 1);
  if (rest.find('/') != std::string_view::npos) {
    refuse(key, json_string(name) + " has more than one '/'", fix);
  }
  if (std::string problem = dns_subdomain_problem(domain); !problem.empty()) {
    refuse(key, json_string(name) + ": " + problem, fix);
  }
  // kubelet's test is a substring one ("kubernetes.io/" anywhere), so "mykubernetes.io" is
  // refused as well.
  if (domain.ends_with("kubernetes.io") || is_or_under(domain, "k8s.io")) {
    refuse(key,
           json_string(name) + " is in Kubernetes' own namespace (" + std::string(domain) +
               "), which kubelet refuses from a device plugin",
           fix);
  }
  if (name.starts_with("requests.")) {
    refuse(key, json_string(name) + " starts with \"requests.\", the prefix of resource quotas",
           fix);
  }
  if (std::string problem = qualified_name_problem(rest); !problem.empty()) {
    refuse(key, json_string(name) + ": " + problem, fix);
  }
}

// The plugin serves each resource on PLUGIN_DIR/plugin_socket_name(name); a unix socket's path
// must fit sun_path. The plugin checks the real --plugin-dir when it serves; kubelet's default
// directory is checked here, so that a name that can never be served there is refused early.
void check_socket_path(const std::string& key, const std::string& name) {
  const std::string socket = std::string(kDefaultPluginDir) + plugin_socket_name(name);
  if (socket.size() > kMaxSocketPath) {
    refuse(key,
           json_string(name) + " makes the socket path " + socket + " " +
               std::to_string(socket.size()) + " bytes long, more than the " +
               std::to_string(kMaxSocketPath) + " a unix socket's path holds",
           "give the resource a shorter name, or serve from a shorter --plugin-dir");
  }
}

// Two resources must not share a socket file (one plugin would replace the other's) nor a
// PCI_RESOURCE_* variable (a pod with both would see only one list). Names that differ only
// among '/', '.' and '-' share a socket; only among '/', '.' and '_', or in case, a variable.
void check_distinct_names(const std::string& key, const std::string& name,
                          const std::string& earlier_key, const std::string& earlier_name) {
  const std::string fix = "rename one of them so that they differ in a letter or digit";
  if (plugin_socket_name(name) == plugin_socket_name(earlier_name)) {
    refuse(key,
           json_string(name) + " and " + json_string(earlier_name) + " (" + earlier_key +
               ") would both be served on the socket " + plugin_socket_name(name),
           fix);
  }
  if (pci_resource_variable(name) == pci_resource_variable(earlier_name)) {
    refuse(key,
           json_string(name) + " and " + json_string(earlier_name) + " (" + earlier_key +
               ") would both list their devices in " + pci_resource_variable(name),
           fix);
  }
}

// lspci -d's vendor:device (without the class part): either side may be empty for "any".
VendorDevice parse_vendor_device(const std::string& key, std::string_view text) {
  const std::string fix =
      "write VENDOR:DEVICE in hex as lspci -nn shows them, e.g. \"1b36:0010\"; leave one side "
      "empty for any (\"8086:\")";
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) {
    refuse(key, json_string(text) + " is not VENDOR:DEVICE", fix);
  }
  VendorDevice match;
  const std::string_view vendor = text.substr(0, colon);
  const std::string_view device = text.substr(colon + 1);
  if (!vendor.empty()) {
    const auto value = parse_hex(vendor, 4);
    if (!value) refuse(key, json_string(text) + ": the vendor is not 1 to 4 hex digits", fix);
    match.vendor = static_cast<std::uint16_t>(*value);
  }
  if (!device.empty()) {
    const auto value = parse_hex(device, 4);
    if (!value) refuse(key, json_string(text) + ": the device is not 1 to 4 hex digits", fix);
    match.device = static_cast<std::uint16_t>(*value);
  }
  if (!match.vendor && !match.device) {
    refuse(key, json_string(text) + " would select every PCI function on the host",
           "name a vendor, a device or both, e.g. \"1b36:0010\"");
  }
  return match;
}

ClassMatch parse_class(const std::string& key, std::string_view text) {
  const auto value = text.size() % 2 == 0 ? parse_hex(text, 6) : std::nullopt;
  if (!value) {
    refuse(key, json_string(text) + " is not a class code of 2, 4 or 6 hex digits",
           "write the class (\"03\"), class and subclass (\"0300\") or all three with the "
           "programming interface (\"010802\"), as lspci -n shows them");
  }
  const unsigned shift = static_cast<unsigned>(4 * (6 - text.size()));
  return {*value << shift, (0xffffffu << shift) & 0xffffffu};
}

pci::Bdf parse_full_bdf(const std::string& key, std::string_view text) {
  // The domain is required: on a host with several PCI domains "01:00.0" names more than one.
  const auto bdf =
      std::count(text.begin(), text.end(), ':') == 2 ? pci::parse_bdf(text) : std::nullopt;
  if (!bdf) {
    refuse(key, json_string(text) + " is not a PCI address with its domain",
           "write DOMAIN:BUS:DEVICE.FUNCTION as lspci -D shows it, e.g. \"0000:01:00.0\"");
  }
  return *bdf;
}

const Json& strings_at(const std::string& key, const Json& value) {
  if (!value.is_array()) {
    refuse(key, "is " + std::string(value.type_name()) + ", not a list of strings",
           "write a JSON list of strings, e.g. [\"1b36:0010\"]");
  }
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) {
      refuse(key + "[" + std::to_string(i) + "]",
             "is " + std::string(value[i].type_name()) + ", not a string",
             "write each entry as a JSON string");
    }
  }
  return value;
}

ResourceSelection parse_resource(const std::string& key, const Json& value) {
  if (!value.is_object()) {
    refuse(key, "is " + std::string(value.type_name()) + ", not an object",
           std::string("write each resource as an object, e.g. ") + std::string(kExample));
  }
  ResourceSelection resource;
  bool named = false;
  for (const auto& [member, field] : value.items()) {
    const std::string field_key = key + "." + member;
    if (member == "name") {
      if (!field.is_string()) {
        refuse(field_key, "is " + std::string(field.type_name()) + ", not a string",
               "write the resource name as a string, e.g. \"vfiokit.io/nvme\"");
      }
      resource.name = field.get<std::string>();
      check_resource_name(field_key, resource.name);
      named = true;
    } else if (member == "devices") {
      const Json& list = strings_at(field_key, field);
      for (std::size_t i = 0; i < list.size(); ++i) {
        resource.devices.push_back(parse_vendor_device(field_key + "[" + std::to_string(i) + "]",
                                                       list[i].get_ref<const std::string&>()));
      }
    } else if (member == "classes") {
      const Json& list = strings_at(field_key, field);
      for (std::size_t i = 0; i < list.size(); ++i) {
        resource.classes.push_back(parse_class(field_key + "[" + std::to_string(i) + "]",
                                               list[i].get_ref<const std::string&>()));
      }
    } else if (member == "bdfs") {
      const Json& list = strings_at(field_key, field);
      for (std::size_t i = 0; i < list.size(); ++i) {
        resource.bdfs.push_back(parse_full_bdf(field_key + "[" + std::to_string(i) + "]",
                                               list[i].get_ref<const std::string&>()));
      }
    } else {
      refuse(field_key, "is not a key of a resource",
             "a resource has \"name\" and one or more of \"devices\", \"classes\", \"bdfs\"");
    }
  }
  if (!named) {
    refuse(key + ".name", "is missing",
           "give every resource a name, e.g. \"name\": \"vfiokit.io/nvme\"");
  }
  if (resource.devices.empty() && resource.classes.empty() && resource.bdfs.empty()) {
    refuse(key, "selects nothing: it has no \"devices\", \"classes\" or \"bdfs\" entry",
           "add at least one, e.g. \"devices\": [\"1b36:0010\"]");
  }
  return resource;
}

}  // namespace

PluginConfig parse_plugin_config(std::string_view json_text) {
  Json document;
  try {
    document = Json::parse(json_text);
  } catch (const Json::exception& e) {
    // parse_error says where ("at line 3, column 5"); it is the only exception parse throws.
    refuse("", std::string("not valid JSON: ") + e.what(),
           "fix the JSON; a valid config looks like " + std::string(kExample));
  }
  if (!document.is_object()) {
    refuse("", "is " + std::string(document.type_name()) + ", not a JSON object",
           "write an object, e.g. " + std::string(kExample));
  }
  PluginConfig config;
  bool has_resources = false;
  for (const auto& [member, field] : document.items()) {
    if (member == "resources") {
      if (!field.is_array()) {
        refuse("resources", "is " + std::string(field.type_name()) + ", not a list",
               "write a list of resources, e.g. " + std::string(kExample));
      }
      for (std::size_t i = 0; i < field.size(); ++i) {
        config.resources.push_back(
            parse_resource("resources[" + std::to_string(i) + "]", field[i]));
      }
      has_resources = true;
    } else if (member == "keepBound") {
      if (!field.is_boolean()) {
        refuse("keepBound", "is " + std::string(field.type_name()) + ", not true or false",
               "write \"keepBound\": true to leave the groups on vfio-pci when the plugin stops");
      }
      config.keep_bound = field.get<bool>();
    } else {
      refuse(member, "is not a key of the device-plugin config",
             "the config has \"resources\" and optionally \"keepBound\"");
    }
  }
  if (!has_resources || config.resources.empty()) {
    refuse("resources", has_resources ? "is empty" : "is missing",
           "name at least one resource, e.g. " + std::string(kExample));
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < config.resources.size(); ++i) {
    const std::string key = "resources[" + std::to_string(i) + "].name";
    const std::string& name = config.resources[i].name;
    if (!names.insert(name).second) {
      refuse(key, json_string(name) + " is named by an earlier resource too",
             "give each resource its own name; list every selector of one resource under it");
    }
    check_socket_path(key, name);
    for (std::size_t earlier = 0; earlier < i; ++earlier) {
      check_distinct_names(key, name, "resources[" + std::to_string(earlier) + "].name",
                           config.resources[earlier].name);
    }
  }
  return config;
}

}  // namespace vfiokit::k8s
