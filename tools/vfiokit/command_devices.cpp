// `vfiokit list`, `show BDF` and `check BDF`: read-only views of PCI devices and IOMMU groups.
#include <unistd.h>

#include <iostream>
#include <map>
#include <memory>

#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/device_report.h"
#include "tools/vfiokit/report.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/plan.h"
#include "vfiokit/bind/readiness.h"
#include "vfiokit/iommu/group.h"
#include "vfiokit/iommu/host_iommu.h"
#include "vfiokit/pci/names.h"
#include "vfiokit/pci/reset.h"
#include "vfiokit/pci/select.h"

namespace vfiokit::cli {
namespace {

void print_list_line(std::ostream& out, const NamedDevice& named, std::size_t driver_width) {
  const auto& d = named.device;
  const std::string driver = d.driver.value_or("-");
  out << "  " << d.bdf.to_string() << "  " << pci::id_hex(d.vendor_id) << ':'
      << pci::id_hex(d.device_id) << "  " << driver
      << std::string(driver_width > driver.size() ? driver_width - driver.size() : 0, ' ') << "  "
      << describe(named).substr(0, describe(named).rfind(" ["));
  if (d.driver_override) out << "  (driver_override " << *d.driver_override << ')';
  out << '\n';
}

// A group's viability for the header line: "viable", or which members keep it from being so.
std::string viability_text(const std::vector<iommu::GroupBlocker>& blockers) {
  if (blockers.empty()) return "viable";
  std::vector<std::string> held;
  for (const auto& blocker : blockers) {
    held.push_back(blocker.bdf.to_string() + " on " + blocker.driver);
  }
  return "not viable: " + join(held, ", ");
}

struct ListArgs {
  std::vector<std::string> slots;    // -s, lspci syntax
  std::vector<std::string> ids;      // -d, lspci syntax
  std::vector<std::string> classes;  // --class names or hex base classes
};

// Each -s and each -d narrows the selection, as lspci's do; --class values add up.
pci::DeviceFilter list_filter(const ListArgs& args) {
  pci::DeviceFilter filter;
  for (const auto& slot : args.slots) pci::parse_slot_filter(slot, filter);
  for (const auto& id : args.ids) pci::parse_id_filter(id, filter);
  for (const auto& name : args.classes) filter.base_classes.push_back(pci::parse_base_class(name));
  return filter;
}

int run_list(const GlobalOptions& options, const ListArgs& args) {
  const HostPaths paths = options.paths();
  const pci::DeviceFilter filter = list_filter(args);
  pci::PciNames names;
  // Every device is read, selected or not: a group's viability depends on all its members.
  std::map<std::optional<unsigned>, std::vector<pci::PciDevice>> members_by_group;
  std::map<std::optional<unsigned>, std::vector<NamedDevice>> selected_by_group;
  std::size_t driver_width = 1;
  for (const auto& bdf : pci::list_pci_devices(paths)) {
    pci::PciDevice device = pci::read_pci_device(paths, bdf);
    members_by_group[device.iommu_group].push_back(device);
    if (!pci::matches(filter, device)) continue;
    NamedDevice named = name_device(names, std::move(device));
    driver_width = std::max(driver_width, named.device.driver.value_or("-").size());
    selected_by_group[named.device.iommu_group].push_back(std::move(named));
  }
  if (options.json) {
    Json groups = Json::array();
    Json ungrouped = Json::array();
    for (const auto& [group, devices] : selected_by_group) {
      // The whole group, selected or not, as show lists it.
      std::vector<pci::Bdf> member_bdfs;
      for (const auto& member : members_by_group.at(group)) member_bdfs.push_back(member.bdf);
      Json list = Json::array();
      for (const auto& named : devices) list.push_back(device_json(named, member_bdfs, nullptr));
      if (group) {
        Json blockers = Json::array();
        for (const auto& blocker : iommu::group_blockers(members_by_group.at(group))) {
          blockers.push_back({{"bdf", blocker.bdf.to_string()}, {"driver", blocker.driver}});
        }
        groups.push_back({{"group", *group},
                          {"viable", blockers.empty()},
                          {"blockers", blockers},
                          {"devices", list}});
      } else {
        ungrouped = list;
      }
    }
    print_json(std::cout, Json{{"groups", groups}, {"without_group", ungrouped}});
    return 0;
  }
  if (members_by_group.empty()) {
    std::cout << "no PCI devices under " << (paths.sys / "bus/pci/devices").string() << '\n';
    return 0;
  }
  if (selected_by_group.empty()) {
    std::cout << "no PCI device matches the selection\n";
    return 0;
  }
  for (const auto& [group, devices] : selected_by_group) {
    if (!group) {
      std::cout << "no IOMMU group (the IOMMU is off)\n";
    } else {
      const auto& members = members_by_group.at(group);
      std::cout << "IOMMU group " << *group << "  ("
                << viability_text(iommu::group_blockers(members));
      if (members.size() > devices.size()) {
        std::cout << "; " << members.size() - devices.size() << " more device"
                  << (members.size() - devices.size() == 1 ? "" : "s") << " not selected";
      }
      std::cout << ")\n";
    }
    for (const auto& named : devices) print_list_line(std::cout, named, driver_width);
  }
  return 0;
}

int run_show(const GlobalOptions& options, const std::string& text) {
  const HostPaths paths = options.paths();
  const pci::Bdf bdf = pci::resolve_device_name(options.paths(), text);
  pci::PciNames names;
  const NamedDevice named = name_device(names, pci::read_pci_device(paths, bdf));
  const bind::DeviceUsage usage = bind::probe_device_usage(paths, bdf);
  std::vector<pci::Bdf> members;
  if (named.device.iommu_group) {
    members = iommu::read_iommu_group(paths, *named.device.iommu_group).devices;
  }
  if (options.json) {
    const pci::ResetSupport reset =
        pci::assess_reset(named.device, pci::read_reset_topology(paths, bdf));
    print_json(std::cout, Json{{"device", device_json(named, members, &usage, &reset)}});
  } else {
    print_device_details(std::cout, named, members, usage);
  }
  return 0;
}

int run_check(const GlobalOptions& options, const std::string& text) {
  const HostPaths paths = options.paths();
  const pci::Bdf bdf = pci::resolve_device_name(options.paths(), text);
  const std::vector<pci::Bdf> requested{bdf};
  const bind::Journal journal(paths.run / "vfiokit");
  const bind::HostView view =
      bind::gather_host_view(paths, requested, journal, ::getpid(), pci::ConfigDepth::full);
  const auto checks = bind::assess_readiness(view, bdf, iommu::probe_host_iommu(paths));
  const bool ready = all_passed(checks);
  if (options.json) {
    print_json(std::cout,
               Json{{"bdf", bdf.to_string()}, {"ready", ready}, {"checks", to_json(checks)}});
  } else {
    pci::PciNames names;
    std::cout << bdf.to_string() << "  "
              << describe(name_device(names, view.devices.at(bdf).device)) << '\n';
    print_checks(std::cout, checks);
    std::cout << (ready ? "ready for passthrough: nothing failed\n"
                        : "not ready for passthrough: fix the FAIL items above\n");
  }
  return ready ? 0 : 1;
}

}  // namespace

Command add_list_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<ListArgs>();
  CLI::App* sub = app.add_subcommand(
      "list",
      "List PCI devices grouped by IOMMU group, with each group's viability, IDs, drivers and "
      "names");
  sub->add_option("-s", args->slots,
                  "Only devices in [[domain:]bus:][slot][.func] (hex, as lspci -s), e.g. 01:00");
  sub->add_option("-d", args->ids,
                  "Only devices with [vendor]:[device][:class[:prog-if]] (hex, as lspci -d), "
                  "e.g. 10de: or ::0300");
  sub->add_option("--class", args->classes,
                  "Only devices of these classes: display, network, storage, multimedia, "
                  "serial-bus, accelerator, ... or a base class in hex")
      ->delimiter(',');
  sub->add_flag("--json", options.json, "Print JSON: groups with viability, and every device");
  return {sub, [&options, args] { return run_list(options, *args); }};
}

Command add_show_command(CLI::App& app, GlobalOptions& options) {
  auto bdf = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "show",
      "Show one PCI device: driver, IOMMU group, BARs, capabilities, MSI/MSI-X, reset "
      "methods, SR-IOV, host use");
  sub->add_option("BDF", *bdf, "PCI address (e.g. 0000:01:00.0) or network interface name")
      ->required();
  sub->add_flag("--json", options.json, "Print JSON");
  return {sub, [&options, bdf] { return run_show(options, *bdf); }};
}

Command add_check_command(CLI::App& app, GlobalOptions& options) {
  auto bdf = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "check",
      "Check one device for passthrough readiness, each item with its fix. Exit 0 if "
      "nothing fails, 1 otherwise");
  sub->add_option("BDF", *bdf, "PCI address (e.g. 0000:01:00.0) or network interface name")
      ->required();
  sub->add_flag("--json", options.json, "Print JSON");
  return {sub, [&options, bdf] { return run_check(options, *bdf); }};
}

}  // namespace vfiokit::cli
