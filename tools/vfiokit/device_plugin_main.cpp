// vfiokit-device-plugin: the program behind `vfiokit device-plugin` (device_plugin_command.h),
// the one that links k8s and gRPC. Its command line is vfiokit's; it runs the device-plugin
// command itself. The library (k8s/) decides and serves; this reads the config, prints each
// event as one line as it happens, and exits once the groups are home.
#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "tools/vfiokit/cli.h"
#include "tools/vfiokit/device_plugin_command.h"
#include "tools/vfiokit/json.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/signals.h"
#include "vfiokit/base/text.h"
#include "vfiokit/k8s/allocation.h"
#include "vfiokit/k8s/device_plugin.h"
#include "vfiokit/k8s/plugin_server.h"

namespace vfiokit::cli {
namespace {

k8s::PluginConfig read_config(const DevicePluginArgs& args) {
  std::string text;
  try {
    text = read_file(args.config);
  } catch (Error& e) {
    throw std::move(
        e.kind(ErrorKind::usage)
            .hint("give the device plugin's config with --config FILE (docs/kubernetes.md)"));
  }
  try {
    k8s::PluginConfig config = k8s::parse_plugin_config(text);
    if (args.keep_bound) config.keep_bound = true;
    return config;
  } catch (Error& e) {
    throw std::move(e.with("config", args.config));
  }
}

std::vector<std::string> bdf_strings(const std::vector<pci::Bdf>& bdfs) {
  std::vector<std::string> out;
  for (const auto& bdf : bdfs) out.push_back(bdf.to_string());
  return out;
}

Json preview_json(const DevicePluginArgs& args, const k8s::PluginConfig& config,
                  const std::vector<k8s::ResourceGroups>& resources) {
  Json list = Json::array();
  for (const auto& resource : resources) {
    Json devices = Json::array();
    for (const auto& group : resource.groups) {
      devices.push_back(
          {{"id", group.members.empty() ? "" : group.members.front().to_string()},
           {"iommu_group", group.group},
           {"members", bdf_strings(group.members)},
           {"selected", bdf_strings(group.selected)},
           {"numa_node", group.numa_node < 0 ? Json(nullptr) : Json(group.numa_node)}});
    }
    Json refused = Json::array();
    for (const auto& refusal : resource.refused) {
      refused.push_back(
          {{"bdf", refusal.bdf.to_string()}, {"problem", refusal.problem}, {"fix", refusal.fix}});
    }
    list.push_back({{"name", resource.name},
                    {"environment_variable", k8s::pci_resource_variable(resource.name)},
                    {"socket", k8s::plugin_socket_name(resource.name)},
                    {"devices", std::move(devices)},
                    {"refused", std::move(refused)}});
  }
  return Json{{"config", args.config},
              {"plugin_dir", args.plugin_dir},
              {"keep_bound", config.keep_bound},
              {"resources", std::move(list)}};
}

void print_preview(std::ostream& out, const DevicePluginArgs& args,
                   const std::vector<k8s::ResourceGroups>& resources) {
  out << "vfiokit device-plugin: dry run of " << args.config << "; nothing was bound or served\n";
  for (const auto& resource : resources) {
    out << resource.name << ": " << resource.groups.size()
        << (resource.groups.size() == 1 ? " device" : " devices") << " (one per IOMMU group), "
        << k8s::pci_resource_variable(resource.name) << ", socket "
        << k8s::plugin_socket_name(resource.name) << "\n";
    for (const auto& group : resource.groups) {
      out << "  " << (group.members.empty() ? "" : group.members.front().to_string()) << "  group "
          << group.group << "  members " << join(bdf_strings(group.members), ",") << "  selected "
          << join(bdf_strings(group.selected), ",") << "  numa "
          << (group.numa_node < 0 ? std::string("-") : std::to_string(group.numa_node)) << "\n";
    }
    for (const auto& refusal : resource.refused) {
      out << "  refused " << refusal.bdf.to_string() << ": " << refusal.problem << "\n";
      if (!refusal.fix.empty()) out << "    fix: " << refusal.fix << "\n";
    }
  }
  out << "each group is bound as `vfiokit bind` would (its checks may still refuse it: "
         "vfiokit check BDF)\n";
}

void print_event(const k8s::PluginEvent& event) {
  std::cout << (event.resource.empty() ? "" : event.resource + ": ")
            << (event.subject.empty() ? "" : event.subject + ": ") << event.detail << "\n";
  if (!event.fix.empty()) std::cout << "  fix: " << event.fix << "\n";
  std::cout.flush();
}

int run_device_plugin(const GlobalOptions& options, const DevicePluginArgs& args) {
  const HostPaths paths = options.paths();
  const k8s::PluginConfig config = read_config(args);
  if (args.dry_run) {
    const auto resources = k8s::select_host_groups(paths, config);
    if (options.json) {
      print_json(std::cout, preview_json(args, config, resources));
    } else {
      print_preview(std::cout, args, resources);
    }
    return 0;
  }
  const SignalGuard signals;
  k8s::PluginOptions plugin_options;
  plugin_options.plugin_dir = args.plugin_dir;
  plugin_options.health_interval = args.health_interval;
  plugin_options.lock_wait = args.wait;
  plugin_options.interrupted = [] { return SignalGuard::received(); };
  plugin_options.on_event = print_event;
  std::cout << "vfiokit device-plugin: " << config.resources.size()
            << (config.resources.size() == 1 ? " resource" : " resources") << " from "
            << args.config << ", kubelet's directory " << args.plugin_dir << "\n";
  k8s::DevicePlugin plugin(paths, config, plugin_options);
  plugin.run();
  const int signal = SignalGuard::received();
  std::cout << "stopping" << (signal != 0 ? " (" + signal_name(signal) + ")" : std::string())
            << (config.keep_bound ? ": the groups stay on vfio-pci (keepBound)\n"
                                  : ": giving the groups back\n");
  const auto outcomes = plugin.stop();
  const bool all_home =
      std::all_of(outcomes.begin(), outcomes.end(), [](const auto& o) { return o.ok; });
  std::cout << (all_home ? "stopped: every group is where it should be\n"
                         : "stopped: some devices did not make it home (vfiokit restore --all)\n");
  std::cout.flush();
  return all_home ? 0 : 1;
}

}  // namespace
}  // namespace vfiokit::cli

int main(int argc, char** argv) {
  // Set by the vfiokit that ran this program; nothing below runs vfiokit again.
  ::unsetenv("VFIOKIT_DEVICE_PLUGIN_EXEC");
  vfiokit::cli::set_device_plugin_runner(&vfiokit::cli::run_device_plugin);
  return vfiokit::cli::run(argc, argv);
}
