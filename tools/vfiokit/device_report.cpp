#include "tools/vfiokit/device_report.h"

#include <cstdio>
#include <ostream>

#include "vfiokit/base/text.h"

namespace vfiokit::cli {
namespace {

std::string or_unknown(const std::string& text) { return text.empty() ? "unknown" : text; }

std::string capability_label(std::string_view name, unsigned id) {
  return name.empty() ? "ID " + hex(id) : std::string(name);
}

std::string msix_summary(const pci::MsixCapability& msix) {
  return std::to_string(msix.table_size) + " vectors, table BAR" + std::to_string(msix.table_bar) +
         "+" + hex(msix.table_offset) + ", PBA BAR" + std::to_string(msix.pba_bar) + "+" +
         hex(msix.pba_offset) + (msix.enabled ? ", enabled" : "");
}

std::string msi_summary(const pci::MsiCapability& msi) {
  return std::to_string(msi.vectors_capable) + (msi.vectors_capable == 1 ? " vector" : " vectors") +
         (msi.address_64bit ? ", 64-bit" : ", 32-bit") +
         (msi.per_vector_masking ? ", per-vector masking" : "") + (msi.enabled ? ", enabled" : "");
}

}  // namespace

NamedDevice name_device(pci::PciNames& names, pci::PciDevice device) {
  NamedDevice named{std::move(device), {}, {}, {}, {}};
  const auto& d = named.device;
  named.vendor_name = names.vendor(d.vendor_id);
  named.device_name = names.device(d.vendor_id, d.device_id);
  named.class_name = names.class_name(d.class_code);
  if (d.subsystem_vendor_id != 0) {
    named.subsystem_name =
        names.subsystem(d.vendor_id, d.device_id, d.subsystem_vendor_id, d.subsystem_id);
    if (named.subsystem_name.empty()) {
      // As lspci names what pci.ids does not know: "Red Hat, Inc. Device 1100".
      const std::string vendor = names.vendor(d.subsystem_vendor_id);
      named.subsystem_name = vendor.empty() ? "Device " + pci::id_hex(d.subsystem_vendor_id) + ':' +
                                                  pci::id_hex(d.subsystem_id)
                                            : vendor + " Device " + pci::id_hex(d.subsystem_id);
    }
  }
  return named;
}

std::string describe(const NamedDevice& named) {
  const auto& d = named.device;
  // What pci.ids does not know is named as lspci names it: "Intel Corporation Device 0d57",
  // "Device 1234:11e8", "Class [ff00]".
  std::string name;
  if (named.vendor_name.empty()) {
    name = "Device " + pci::id_hex(d.vendor_id) + ':' + pci::id_hex(d.device_id);
  } else if (named.device_name.empty()) {
    name = named.vendor_name + " Device " + pci::id_hex(d.device_id);
  } else {
    name = named.vendor_name + ' ' + named.device_name;
  }
  return (named.class_name.empty() ? std::string("Class") : named.class_name) + " [" +
         pci::class_hex(d.class_code) + "]: " + name + " [" + pci::id_hex(d.vendor_id) + ':' +
         pci::id_hex(d.device_id) + ']';
}

namespace {

// Which resets the device really has (pci/reset.h): the device object's "reset".
Json reset_json(const pci::ResetSupport& reset) {
  Json also_reset = Json::array();
  for (const auto& neighbour : reset.also_reset) also_reset.push_back(neighbour.bdf.to_string());
  return {{"methods", reset.methods()},
          {"from_kernel", !reset.kernel_methods.empty()},
          {"function_level", reset.function_level()},
          {"flr", reset.flr},
          {"af_flr", reset.af_flr},
          {"pm", reset.pm},
          {"bus", reset.bus},
          {"slot", reset.slot},
          {"also_reset", also_reset}};
}

}  // namespace

Json device_json(const NamedDevice& named, const std::vector<pci::Bdf>& group_members,
                 const bind::DeviceUsage* usage, const pci::ResetSupport* reset) {
  const auto& d = named.device;
  auto name_or_null = [](const std::string& name) {
    return name.empty() ? Json(nullptr) : Json(name);
  };
  Json j;
  j["bdf"] = d.bdf.to_string();
  j["vendor_id"] = json_hex(d.vendor_id, 4);
  j["device_id"] = json_hex(d.device_id, 4);
  j["vendor"] = name_or_null(named.vendor_name);
  j["device"] = name_or_null(named.device_name);
  j["class"] = json_hex(d.class_code, 6);
  j["class_name"] = name_or_null(named.class_name);
  j["subsystem_vendor_id"] = json_hex(d.subsystem_vendor_id, 4);
  j["subsystem_id"] = json_hex(d.subsystem_id, 4);
  j["subsystem"] = name_or_null(named.subsystem_name);
  j["revision"] = json_hex(d.revision, 2);
  j["driver"] = Json(d.driver);
  j["driver_override"] = Json(d.driver_override);
  j["iommu_group"] = Json(d.iommu_group);
  if (d.iommu_group) {
    Json members = Json::array();
    for (const auto& member : group_members) members.push_back(member.to_string());
    j["iommu_group_devices"] = members;
  } else {
    j["iommu_group_devices"] = nullptr;
  }
  j["numa_node"] = d.numa_node >= 0 ? Json(d.numa_node) : Json(nullptr);
  j["boot_vga"] = d.boot_vga;
  j["bridge"] = d.is_bridge();
  j["multifunction"] = d.multifunction();
  if (d.sriov_total_vfs || d.physfn) {
    j["sriov"] = {{"total_vfs", Json(d.sriov_total_vfs)},
                  {"num_vfs", Json(d.sriov_num_vfs)},
                  {"physfn", d.physfn ? Json(d.physfn->to_string()) : Json(nullptr)}};
  } else {
    j["sriov"] = nullptr;
  }
  j["reset_methods"] = d.reset_methods;
  j["flr"] = d.config.pcie && d.config.pcie->function_level_reset;
  j["reset"] = reset ? reset_json(*reset) : Json(nullptr);  // null: not looked at (list)
  Json bars = Json::array();
  for (const auto& bar : d.bars) {
    bars.push_back({{"index", bar.index},
                    {"kind", pci::to_string(bar.kind)},
                    {"prefetchable", bar.prefetchable},
                    {"size", bar.size},
                    {"address", json_hex(bar.address)}});
  }
  j["bars"] = bars;
  j["rom_size"] = d.rom_size;
  j["config_size"] = d.config.size;
  Json caps = Json::array();
  for (const auto& cap : d.config.capabilities) {
    caps.push_back({{"id", json_hex(cap.id, 2)},
                    {"offset", json_hex(cap.offset)},
                    {"name", name_or_null(std::string(pci::capability_name(cap.id)))}});
  }
  j["capabilities"] = caps;
  Json ext = Json::array();
  for (const auto& cap : d.config.extended_capabilities) {
    ext.push_back({{"id", json_hex(cap.id, 4)},
                   {"version", cap.version},
                   {"offset", json_hex(cap.offset)},
                   {"name", name_or_null(std::string(pci::extended_capability_name(cap.id)))}});
  }
  j["extended_capabilities"] = ext;
  if (const auto& msi = d.config.msi) {
    j["msi"] = {{"offset", json_hex(msi->offset)},
                {"vectors", msi->vectors_capable},
                {"address_64bit", msi->address_64bit},
                {"per_vector_masking", msi->per_vector_masking},
                {"enabled", msi->enabled}};
  } else {
    j["msi"] = nullptr;
  }
  if (const auto& msix = d.config.msix) {
    j["msix"] = {{"offset", json_hex(msix->offset)}, {"vectors", msix->table_size},
                 {"table_bar", msix->table_bar},     {"table_offset", json_hex(msix->table_offset)},
                 {"pba_bar", msix->pba_bar},         {"pba_offset", json_hex(msix->pba_offset)},
                 {"enabled", msix->enabled}};
  } else {
    j["msix"] = nullptr;
  }
  j["config_error"] = d.config.error.empty() ? Json(nullptr) : Json(d.config.error);
  if (usage) {
    Json net = Json::array();
    for (const auto& n : usage->net) {
      net.push_back({{"name", n.name},
                     {"up", n.up},
                     {"ipv4_routes", n.ipv4_routes},
                     {"ipv6_routes", n.ipv6_routes},
                     {"master", Json(n.master)},
                     {"in_use", n.in_use()}});
    }
    Json block = Json::array();
    for (const auto& b : usage->block) {
      block.push_back({{"name", b.name},
                       {"dev", b.device_number},
                       {"mount_points", b.mount_points},
                       {"holders", b.holders},
                       {"swap", b.swap},
                       {"in_use", b.in_use()}});
    }
    j["host_use"] = {{"net", net}, {"block", block}};
  } else {
    j["host_use"] = nullptr;  // not looked at (list)
  }
  return j;
}

void print_device_details(std::ostream& out, const NamedDevice& named,
                          const std::vector<pci::Bdf>& group_members,
                          const bind::DeviceUsage& usage) {
  const auto& d = named.device;
  auto row = [&out](std::string_view label, const std::string& value) {
    out << "  " << label << std::string(label.size() < 16 ? 16 - label.size() : 1, ' ') << value
        << '\n';
  };
  char revision[4];
  std::snprintf(revision, sizeof revision, "%02x", d.revision);
  out << d.bdf.to_string() << "  " << describe(named) << " (rev " << revision << ")\n";
  if (d.subsystem_vendor_id != 0) {
    row("Subsystem:", or_unknown(named.subsystem_name) + " [" + pci::id_hex(d.subsystem_vendor_id) +
                          ':' + pci::id_hex(d.subsystem_id) + ']');
  }
  row("Driver:", d.driver.value_or("none") +
                     (d.driver_override ? " (driver_override " + *d.driver_override + ")" : ""));
  if (d.iommu_group) {
    std::vector<std::string> members;
    for (const auto& member : group_members) members.push_back(member.to_string());
    row("IOMMU group:", std::to_string(*d.iommu_group) + " (" + join(members, ", ") + ")");
  } else {
    row("IOMMU group:", "none (the IOMMU is off)");
  }
  row("Type:", std::string(d.is_bridge() ? "bridge" : "endpoint") +
                   (d.multifunction() ? ", multifunction" : "") + (d.boot_vga ? ", boot VGA" : ""));
  if (d.numa_node >= 0) row("NUMA node:", std::to_string(d.numa_node));
  if (d.sriov_total_vfs) {
    row("SR-IOV:", "physical function, " + std::to_string(d.sriov_num_vfs.value_or(0)) + " of " +
                       std::to_string(*d.sriov_total_vfs) + " virtual functions enabled");
  }
  if (d.physfn) row("SR-IOV:", "virtual function of " + d.physfn->to_string());
  row("Reset:", d.reset_methods.empty() ? std::string("none listed") : join(d.reset_methods, ", "));
  for (const auto& bar : d.bars) {
    row("BAR" + std::to_string(bar.index) + ":",
        human_size(bar.size) + ' ' + std::string(pci::to_string(bar.kind)) +
            (bar.prefetchable ? " prefetchable" : "") + " at " + hex(bar.address));
  }
  if (d.rom_size) row("ROM:", human_size(d.rom_size));
  if (d.config.msi) row("MSI:", msi_summary(*d.config.msi));
  if (d.config.msix) row("MSI-X:", msix_summary(*d.config.msix));
  std::vector<std::string> caps;
  for (const auto& cap : d.config.capabilities) {
    caps.push_back("[" + hex(cap.offset).substr(2) + "] " +
                   capability_label(pci::capability_name(cap.id), cap.id));
  }
  for (const auto& cap : d.config.extended_capabilities) {
    caps.push_back("[" + hex(cap.offset).substr(2) + "] " +
                   capability_label(pci::extended_capability_name(cap.id), cap.id));
  }
  if (d.config.header_only) {
    row("Capabilities:", "unknown: readable by root only (run vfiokit as root)");
  } else if (!caps.empty()) {
    row("Capabilities:", join(caps, ", "));
  }
  row("Config space:",
      std::to_string(d.config.size) + " bytes" +
          (d.config.header_only ? " (the header; the rest is root's to read)" : "") +
          (d.config.error.empty() ? "" : "; " + d.config.error));
  std::vector<std::string> uses;
  for (const auto& net : usage.net) uses.push_back(net.describe());
  for (const auto& block : usage.block) uses.push_back(block.describe());
  row("Host use:", uses.empty() ? std::string("none") : join(uses, "; "));
}

}  // namespace vfiokit::cli
