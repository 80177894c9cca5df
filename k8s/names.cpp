#include "vfiokit/k8s/names.h"

namespace vfiokit::k8s {
namespace {

// KubeVirt's util.ResourceNameToEnvVar: strings.ToUpper, then '/' and '.' to '_'.
std::string variable_suffix(std::string_view resource_name) {
  std::string suffix;
  for (const char c : resource_name) {
    if (c >= 'a' && c <= 'z') {
      suffix += static_cast<char>(c - 'a' + 'A');
    } else if (c == '/' || c == '.') {
      suffix += '_';
    } else {
      suffix += c;
    }
  }
  return suffix;
}

}  // namespace

std::string plugin_socket_name(std::string_view resource_name) {
  std::string name = "vfiokit-";
  for (const char c : resource_name) name += (c == '/' || c == '.') ? '-' : c;
  return name + ".sock";
}

std::string pci_resource_variable(std::string_view resource_name) {
  return "PCI_RESOURCE_" + variable_suffix(resource_name);
}

std::string group_members_variable(std::string_view resource_name) {
  return "VFIOKIT_GROUP_MEMBERS_" + variable_suffix(resource_name);
}

}  // namespace vfiokit::k8s
