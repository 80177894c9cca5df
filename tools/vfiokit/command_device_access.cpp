// `vfiokit info BDF` and `vfiokit selftest BDF`: a device on vfio-pci, seen and driven through
// VFIO from user space.
#include <linux/vfio.h>

#include <iostream>
#include <memory>

#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/device_report.h"
#include "tools/vfiokit/json.h"
#include "tools/vfiokit/options.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/drivers/selftest.h"
#include "vfiokit/iommu/backend.h"
#include "vfiokit/pci/select.h"
#include "vfiokit/vfio/open.h"
#include "vfiokit/vfio/summary.h"

namespace vfiokit::cli {
namespace {

std::string page_sizes_text(std::uint64_t bitmap) {
  std::vector<std::string> sizes;
  for (unsigned bit = 0; bit < 64; ++bit) {
    if (bitmap & (std::uint64_t{1} << bit)) sizes.push_back(human_size(std::uint64_t{1} << bit));
  }
  return sizes.empty() ? std::string("unknown") : join(sizes, ", ");
}

Json info_json(const vfio::DeviceSummary& info) {
  Json regions = Json::array();
  for (const auto& r : info.regions) {
    Json areas = Json::array();
    for (const auto& a : r.mappable_areas()) {
      areas.push_back({{"offset", json_hex(a.offset)}, {"size", a.size}});
    }
    regions.push_back({{"index", r.index},
                       {"name", vfio::region_name(r.index)},
                       {"size", r.size},
                       {"offset", json_hex(r.offset)},
                       {"read", r.readable()},
                       {"write", r.writable()},
                       {"mmap", r.mappable()},
                       {"sparse", r.sparse_areas.has_value()},
                       {"mmap_areas", areas},
                       {"msix_mappable", r.msix_mappable},
                       {"type", r.type},
                       {"subtype", r.subtype}});
  }
  Json irqs = Json::array();
  for (const auto& irq : info.irqs) {
    // The same keys either way: the flags are null, and only then the reason set, when the
    // kernel does not offer the index.
    const auto& i = irq.info;
    irqs.push_back({{"index", irq.index},
                    {"name", vfio::irq_index_name(irq.index)},
                    {"available", i.has_value()},
                    {"count", i ? Json(i->count) : Json(nullptr)},
                    {"eventfd", i ? Json(i->eventfd()) : Json(nullptr)},
                    {"maskable", i ? Json(i->maskable()) : Json(nullptr)},
                    {"automasked", i ? Json(i->automasked()) : Json(nullptr)},
                    {"noresize", i ? Json(i->noresize()) : Json(nullptr)},
                    {"dynamic", irq.dynamic_msix() ? Json(*irq.dynamic_msix()) : Json(nullptr)},
                    {"reason", i ? Json(nullptr) : Json(irq.unavailable)}});
  }
  Json ranges = Json::array();
  for (const auto& r : info.iommu.iova_ranges) {
    ranges.push_back({{"start", json_hex(r.start)}, {"end", json_hex(r.end)}});
  }
  Json dependencies = Json::array();
  for (const auto& d : info.hot_reset) {
    dependencies.push_back({{"bdf", d.bdf.to_string()}, {"group", d.group}});
  }
  return {{"bdf", info.bdf.to_string()},
          {"flags", {{"reset", info.info.resettable()}, {"pci", info.info.is_pci()}}},
          {"regions", regions},
          {"irqs", irqs},
          {"iommu",
           {{"backend", info.iommu.backend},
            {"page_sizes", json_hex(info.iommu.page_sizes)},
            {"iova_ranges", ranges},
            {"dma_available", info.iommu.dma_available}}},
          {"hot_reset_dependencies", dependencies}};
}

void print_info(std::ostream& out, const vfio::DeviceSummary& info) {
  out << info.bdf.to_string() << " through VFIO (" << info.iommu.backend << ")\n";
  out << "  reset: " << (info.info.resettable() ? "VFIO_DEVICE_RESET available" : "none")
      << "; bus reset " << (info.hot_reset.empty() ? "not possible" : "also resets:");
  for (const auto& d : info.hot_reset) {
    out << ' ' << d.bdf.to_string() << " (group " << d.group << ')';
  }
  out << "\n  regions:\n";
  for (const auto& r : info.regions) {
    if (r.size == 0) continue;
    std::string areas;
    if (r.sparse_areas) {
      std::vector<std::string> parts;
      for (const auto& a : *r.sparse_areas)
        parts.push_back(hex(a.offset) + "+" + human_size(a.size));
      areas = "  mmap only " + (parts.empty() ? std::string("nothing") : join(parts, ", "));
    }
    const std::string name = vfio::region_name(r.index);
    out << "    " << name << std::string(8 - std::min<std::size_t>(7, name.size()), ' ')
        << human_size(r.size) << "  " << r.flags_text() << areas
        << (r.msix_mappable ? "  msix-mappable" : "") << '\n';
  }
  out << "  interrupts:\n";
  for (const auto& irq : info.irqs) {
    const std::string name = vfio::irq_index_name(irq.index);
    if (!irq.info) {
      out << "    " << name << "  " << irq.unavailable << '\n';
      continue;
    }
    if (irq.info->count == 0) continue;
    out << "    " << name << "  " << irq.info->count << " vector"
        << (irq.info->count == 1 ? "" : "s") << "  " << irq.info->flags_text()
        << (irq.dynamic_msix().value_or(false) ? "  dynamic" : "") << '\n';
  }
  out << "  IOMMU: page sizes " << page_sizes_text(info.iommu.page_sizes) << "\n";
  for (const auto& r : info.iommu.iova_ranges) {
    out << "    usable IOVA " << hex(r.start) << " - " << hex(r.end) << '\n';
  }
  if (info.iommu.dma_available) {
    out << "    DMA mappings still allowed: " << *info.iommu.dma_available << '\n';
  }
}

int run_info(const GlobalOptions& options, const std::string& text) {
  const pci::Bdf bdf = pci::resolve_device_name(options.paths(), text);
  vfio::OpenedDevice opened = vfio::open_vfio_device(options.paths(), bdf);
  const vfio::DeviceSummary info = vfio::summarize_device(opened);
  if (options.json) {
    print_json(std::cout, info_json(info));
  } else {
    print_info(std::cout, info);
  }
  return 0;
}

struct SelftestArgs {
  std::string bdf;
  std::string expected_serial;
  std::vector<std::string> stages;
  std::chrono::milliseconds timeout{10000};
};

int run_selftest_command(const GlobalOptions& options, const SelftestArgs& args) {
  const pci::Bdf bdf = pci::resolve_device_name(options.paths(), args.bdf);
  drivers::SelftestOptions selftest;
  selftest.timeout = args.timeout;
  if (!args.expected_serial.empty()) selftest.expected_serial = args.expected_serial;
  selftest.stages = args.stages;
  const auto results = drivers::run_selftest(options.paths(), bdf, selftest);
  const bool passed = std::none_of(results.begin(), results.end(), [](const auto& r) {
    return r.status == drivers::StageStatus::failed;
  });
  if (options.json) {
    Json stages = Json::array();
    for (const auto& r : results) {
      stages.push_back(
          {{"stage", r.name}, {"status", drivers::to_string(r.status)}, {"detail", r.detail}});
    }
    print_json(std::cout, Json{{"bdf", bdf.to_string()}, {"passed", passed}, {"stages", stages}});
  } else {
    std::cout << "selftest " << bdf.to_string() << '\n';
    for (const auto& r : results) {
      const std::string status(drivers::to_string(r.status));
      std::cout << "  " << status << std::string(9 - status.size(), ' ') << r.name
                << std::string(13 - r.name.size(), ' ') << r.detail << '\n';
    }
    std::cout << (passed ? "passed\n" : "FAILED\n");
  }
  return passed ? 0 : 1;
}

}  // namespace

Command add_info_command(CLI::App& app, GlobalOptions& options) {
  auto bdf = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "info",
      "Show what VFIO offers for a device on vfio-pci: regions and their mmap areas, "
      "interrupt indexes, IOMMU page sizes, usable IOVA ranges, DMA mappings left");
  sub->add_option("BDF", *bdf, "PCI address of a device on vfio-pci")->required();
  sub->add_flag("--json", options.json, "Print JSON");
  return {sub, [&options, bdf] { return run_info(options, *bdf); }};
}

Command add_selftest_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<SelftestArgs>();
  CLI::App* sub =
      app.add_subcommand("selftest",
                         "Drive a device on vfio-pci from user space, stage by stage: config, bar, "
                         "dma, irq-eventfd, irq-kvm. Exit 0 if no stage fails");
  sub->add_option("BDF", args->bdf, "PCI address of a device on vfio-pci")->required();
  sub->add_option("--stage", args->stages, "Run only these stages (repeatable)");
  sub->add_option("--expect-serial", args->expected_serial,
                  "NVMe: fail the dma stage unless Identify reports this serial");
  add_seconds_option(sub, "--timeout", args->timeout, 0.001, 3600,
                     "How long to wait for the device each time");
  sub->add_flag("--json", options.json, "Print JSON");
  return {sub, [&options, args] { return run_selftest_command(options, *args); }};
}

}  // namespace vfiokit::cli
