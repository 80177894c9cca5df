// `vfiokit rom BDF [--output FILE]`: a device's option ROM, read through VFIO's ROM region when
// the device is on vfio-pci (sysfs `rom` otherwise), every image walked and checked, and saved
// for QEMU's romfile=.
#include <iomanip>
#include <iostream>
#include <memory>

#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/json.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/pci/device.h"
#include "vfiokit/pci/rom.h"
#include "vfiokit/pci/select.h"
#include "vfiokit/vfio/open.h"

namespace vfiokit::cli {
namespace {

struct RomArgs {
  std::string bdf;
  std::string output;
};

struct RomRead {
  std::vector<std::uint8_t> bytes;
  std::string source;  // "vfio" or "sysfs"
};

RomRead read_rom(const HostPaths& paths, const pci::PciDevice& dev) {
  if (dev.driver == "vfio-pci") {
    // The kernel maps the ROM BAR for the read; past the images the region reads 0xff, so the
    // bytes are as long as the BAR.
    const vfio::OpenedDevice opened = vfio::open_vfio_device(paths, dev.bdf);
    return {opened.device.read_rom(), "vfio"};
  }
  return {pci::read_sysfs_rom(paths, dev.bdf), "sysfs"};
}

std::string code_type_text(const pci::RomImage& image) {
  std::string text(pci::rom_code_type_name(image.code_type));
  if (text.empty()) text = "code type " + hex(image.code_type);
  if (image.efi) {
    const std::string_view machine = pci::efi_machine_name(image.efi->machine_type);
    text +=
        " " + (machine.empty() ? "machine " + hex(image.efi->machine_type) : std::string(machine));
    if (image.efi->compression_type == 1) text += ", compressed";
  }
  return text;
}

std::string checksum_text(const pci::RomImage& image) {
  switch (image.checksum) {
    case pci::RomChecksum::ok:
      return "checksum ok";
    case pci::RomChecksum::mismatch:
      return "checksum BAD";
    case pci::RomChecksum::not_required:
      break;
  }
  return "no checksum (none required)";
}

Json optional_name(std::string_view name) {
  return name.empty() ? Json(nullptr) : Json(std::string(name));
}

Json image_json(const pci::RomImage& image) {
  Json device_list = Json::array();
  for (const std::uint16_t id : image.device_list) device_list.push_back(json_hex(id, 4));
  Json efi = nullptr;
  if (image.efi) {
    efi = {{"signature", json_hex(image.efi->signature)},
           {"machine_type", json_hex(image.efi->machine_type, 4)},
           {"machine", optional_name(pci::efi_machine_name(image.efi->machine_type))},
           {"subsystem", json_hex(image.efi->subsystem, 4)},
           {"subsystem_name", optional_name(pci::efi_subsystem_name(image.efi->subsystem))},
           {"compression_type", image.efi->compression_type},
           {"image_offset", json_hex(image.efi->image_offset)}};
  }
  return {{"offset", json_hex(image.offset)},
          {"size", image.length},
          {"code_type", image.code_type},
          {"code_type_name", optional_name(pci::rom_code_type_name(image.code_type))},
          {"vendor_id", json_hex(image.vendor_id, 4)},
          {"device_id", json_hex(image.device_id, 4)},
          {"device_list", device_list},
          {"class_code", json_hex(image.class_code, 6)},
          {"pcir_revision", image.pcir_revision},
          {"code_revision", json_hex(image.code_revision, 4)},
          {"last", image.last},
          {"checksum", std::string(pci::to_string(image.checksum))},
          {"efi", efi}};
}

void print_text(std::ostream& out, const pci::PciDevice& dev, const RomRead& read,
                const pci::RomLayout& layout, const std::optional<std::string>& written) {
  out << dev.bdf.to_string() << "  option ROM: " << read.bytes.size() << " bytes read through "
      << read.source << ", " << layout.images.size()
      << (layout.images.size() == 1 ? " image" : " images") << " in " << layout.end << " bytes\n";
  for (std::size_t i = 0; i < layout.images.size(); ++i) {
    const pci::RomImage& image = layout.images[i];
    out << "  image " << i << "  at " << std::left << std::setw(8) << hex(image.offset)
        << std::right << std::setw(8) << image.length << " bytes  " << std::left << std::setw(16)
        << code_type_text(image) << std::right << pci::id_hex(image.vendor_id) << ':'
        << pci::id_hex(image.device_id) << "  " << checksum_text(image)
        << (image.last ? "  last" : "") << '\n';
  }
  if (!layout.problems.empty()) {
    out << "problems:\n";
    for (const pci::RomProblem& problem : layout.problems) out << "  " << problem.message << '\n';
  }
  if (layout.valid()) {
    out << "valid for " << pci::id_hex(dev.vendor_id) << ':' << pci::id_hex(dev.device_id) << '\n';
  } else {
    out << "not a valid option ROM for " << pci::id_hex(dev.vendor_id) << ':'
        << pci::id_hex(dev.device_id) << ": QEMU would hand the guest a ROM its firmware "
        << "cannot use\n";
  }
  if (written) {
    out << "written to " << *written << " (" << layout.end << " bytes): use it with -device "
        << "vfio-pci,host=" << dev.bdf.to_string() << ",romfile=" << *written << '\n';
  }
}

int run_rom(const GlobalOptions& options, const RomArgs& args) {
  const HostPaths paths = options.paths();
  const pci::Bdf bdf = pci::resolve_device_name(paths, args.bdf);
  const pci::PciDevice dev = pci::read_pci_device(paths, bdf);
  if (dev.rom_size == 0) {
    throw Error("read option ROM", "the device has no option ROM (no ROM BAR the kernel assigned)")
        .with("bdf", bdf.to_string())
        .hint(
            "a guest that needs one gets it from a file: romfile=FILE with a dump of the same "
            "card's ROM")
        .kind(ErrorKind::usage);
  }
  const RomRead read = read_rom(paths, dev);
  const pci::RomLayout layout =
      pci::parse_rom(read.bytes, pci::RomDeviceIds{dev.vendor_id, dev.device_id});
  std::optional<std::string> written;
  if (!args.output.empty() && layout.valid()) {
    // The images only: the rest of a VFIO read is the BAR's 0xff padding, and sysfs stops there.
    write_file_durable(args.output,
                       std::string(read.bytes.begin(),
                                   read.bytes.begin() + static_cast<std::ptrdiff_t>(layout.end)),
                       0644);
    written = args.output;
  }
  if (options.json) {
    Json images = Json::array();
    for (const auto& image : layout.images) images.push_back(image_json(image));
    Json problems = Json::array();
    for (const auto& problem : layout.problems) {
      problems.push_back({{"kind", std::string(pci::to_string(problem.kind))},
                          {"offset", json_hex(problem.offset)},
                          {"message", problem.message}});
    }
    print_json(std::cout, Json{{"bdf", bdf.to_string()},
                               {"vendor_id", json_hex(dev.vendor_id, 4)},
                               {"device_id", json_hex(dev.device_id, 4)},
                               {"source", read.source},
                               {"bar_size", dev.rom_size},
                               {"read_size", read.bytes.size()},
                               {"size", layout.end},
                               {"valid", layout.valid()},
                               {"images", images},
                               {"problems", problems},
                               {"output", written}});
  } else {
    print_text(std::cout, dev, read, layout, written);
    if (!args.output.empty() && !written) {
      std::cout << "not written to " << args.output << ": the ROM is not valid\n";
    }
  }
  return layout.valid() ? 0 : 1;
}

}  // namespace

Command add_rom_command(CLI::App& app, GlobalOptions& options) {
  auto args = std::make_shared<RomArgs>();
  CLI::App* sub = app.add_subcommand(
      "rom",
      "Read a device's option ROM, check every image (x86, UEFI), and save it for QEMU's "
      "romfile=");
  sub->add_option("BDF", args->bdf, "PCI address (e.g. 0000:01:00.0) or network interface name")
      ->required();
  sub->add_option("--output", args->output,
                  "Write the ROM's images to this file (atomically) when the ROM is valid");
  sub->add_flag("--json", options.json, "Print JSON");
  return {sub, [&options, args] { return run_rom(options, *args); }};
}

}  // namespace vfiokit::cli
