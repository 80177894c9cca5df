#include "vfiokit/pci/rom.h"

#include <cstdio>

#include "vfiokit/base/text.h"

namespace vfiokit::pci {
namespace {

// PCI Data Structure fields (PCI Firmware Specification 3.x, "PCI Data Structure Format").
constexpr std::size_t kPcirVendor = 0x04;
constexpr std::size_t kPcirDevice = 0x06;
constexpr std::size_t kPcirDeviceList = 0x08;  // PCI 2.x: Vital Product Data pointer (reserved)
constexpr std::size_t kPcirLength = 0x0a;
constexpr std::size_t kPcirRevision = 0x0c;
constexpr std::size_t kPcirClassCode = 0x0d;
constexpr std::size_t kPcirImageLength = 0x10;
constexpr std::size_t kPcirCodeRevision = 0x12;
constexpr std::size_t kPcirCodeType = 0x14;
constexpr std::size_t kPcirIndicator = 0x15;
// UEFI's header in the image (UEFI Specification, "PCI Option ROMs").
constexpr std::size_t kEfiInitializationSize = 0x02;
constexpr std::size_t kEfiSignature = 0x04;
constexpr std::size_t kEfiSubsystem = 0x08;
constexpr std::size_t kEfiMachineType = 0x0a;
constexpr std::size_t kEfiCompressionType = 0x0c;
constexpr std::size_t kEfiImageOffset = 0x16;
// x86: byte 2 is the Initialization Size in 512-byte units.
constexpr std::size_t kX86InitializationSize = 0x02;

std::uint32_t get_le(RomBytes bytes, std::size_t offset, std::size_t size) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < size; ++i) value |= std::uint32_t{bytes[offset + i]} << (8 * i);
  return value;
}

std::string at(std::size_t offset) { return hex(offset); }

std::string ids(std::uint16_t vendor, std::uint16_t device) {
  char text[16];
  std::snprintf(text, sizeof text, "%04x:%04x", vendor, device);
  return text;
}

class Walker {
 public:
  Walker(RomBytes rom, std::optional<RomDeviceIds> device) : rom_(rom), device_(device) {}

  RomLayout walk() {
    std::size_t offset = 0;
    for (;;) {
      const std::optional<RomImage> image = image_at(offset);
      if (!image) break;
      layout_.images.push_back(*image);
      layout_.end = image->offset + image->length;
      if (image->last) return std::move(layout_);
      offset = layout_.end;
      if (offset >= rom_.size()) {
        problem(RomProblemKind::no_last_image, offset,
                "the ROM ends after image " + std::to_string(layout_.images.size() - 1) + " at " +
                    at(image->offset) + " but no image has the last-image flag");
        break;
      }
    }
    return std::move(layout_);
  }

 private:
  void problem(RomProblemKind kind, std::size_t offset, std::string message) {
    layout_.problems.push_back({kind, offset, std::move(message)});
  }

  std::string name(std::size_t offset) const {
    return "image " + std::to_string(layout_.images.size()) + " at " + at(offset);
  }

  // The image at `offset`, or nullopt (with a problem) when the walk cannot go on.
  std::optional<RomImage> image_at(std::size_t offset) {
    const std::size_t left = rom_.size() - offset;
    if (left < 2 || get_le(rom_, offset, 2) != kRomSignature) {
      problem(RomProblemKind::bad_signature, offset,
              name(offset) + ": no ROM signature 0x55 0xAA" +
                  (left < 2 ? std::string(" (the data ends)") : ""));
      return std::nullopt;
    }
    if (left < kRomHeaderSize) {
      problem(RomProblemKind::truncated_header, offset,
              name(offset) + ": " + std::to_string(left) + " bytes left, the header needs " +
                  std::to_string(kRomHeaderSize));
      return std::nullopt;
    }
    RomImage image;
    image.offset = offset;
    image.pcir_offset = static_cast<std::uint16_t>(get_le(rom_, offset + kRomPcirPointerOffset, 2));
    if (image.pcir_offset < kRomHeaderSize || image.pcir_offset + kPcirMinimumLength > left) {
      problem(RomProblemKind::pcir_out_of_bounds, offset + kRomPcirPointerOffset,
              name(offset) + ": PCI Data Structure pointer " + at(image.pcir_offset) +
                  " is outside the image's header and data (" + std::to_string(left) +
                  " bytes left)");
      return std::nullopt;
    }
    const std::size_t pcir = offset + image.pcir_offset;
    if (rom_[pcir] != 'P' || rom_[pcir + 1] != 'C' || rom_[pcir + 2] != 'I' ||
        rom_[pcir + 3] != 'R') {
      problem(RomProblemKind::bad_pcir_signature, pcir,
              name(offset) + ": no \"PCIR\" signature at its PCI Data Structure " + at(pcir));
      return std::nullopt;
    }
    image.vendor_id = static_cast<std::uint16_t>(get_le(rom_, pcir + kPcirVendor, 2));
    image.device_id = static_cast<std::uint16_t>(get_le(rom_, pcir + kPcirDevice, 2));
    image.pcir_length = static_cast<std::uint16_t>(get_le(rom_, pcir + kPcirLength, 2));
    image.pcir_revision = rom_[pcir + kPcirRevision];
    image.class_code = get_le(rom_, pcir + kPcirClassCode, 3);
    image.length = std::size_t{get_le(rom_, pcir + kPcirImageLength, 2)} * kRomBlockSize;
    image.code_revision = static_cast<std::uint16_t>(get_le(rom_, pcir + kPcirCodeRevision, 2));
    image.code_type = rom_[pcir + kPcirCodeType];
    image.last = (rom_[pcir + kPcirIndicator] & kPcirLastImage) != 0;
    if (image.length == 0) {
      problem(RomProblemKind::zero_length, pcir + kPcirImageLength,
              name(offset) + ": Image Length is 0, so no next image can be found");
      return std::nullopt;
    }
    if (image.length > left) {
      problem(RomProblemKind::past_end, pcir + kPcirImageLength,
              name(offset) + ": Image Length " + std::to_string(image.length) +
                  " bytes reaches past the ROM's " + std::to_string(rom_.size()) + " bytes");
      return std::nullopt;
    }
    if (image.pcir_offset + std::size_t{kPcirMinimumLength} > image.length) {
      problem(RomProblemKind::pcir_out_of_bounds, offset + kRomPcirPointerOffset,
              name(offset) + ": its PCI Data Structure at " + at(image.pcir_offset) +
                  " lies past the image's " + std::to_string(image.length) + " bytes");
      return std::nullopt;
    }
    const RomBytes bytes = rom_.subspan(offset, image.length);
    read_device_list(image, bytes);
    if (image.code_type == static_cast<std::uint8_t>(RomCodeType::x86)) {
      check_x86(image, bytes);
    } else if (image.code_type == static_cast<std::uint8_t>(RomCodeType::efi)) {
      read_efi(image, bytes);
    }
    if (device_ && !image.supports(device_->vendor_id, device_->device_id)) {
      problem(RomProblemKind::id_mismatch, pcir + kPcirVendor,
              name(offset) + ": for " + ids(image.vendor_id, image.device_id) +
                  (image.device_list.empty() ? std::string() : " (and its device list)") +
                  ", not for this device " + ids(device_->vendor_id, device_->device_id));
    }
    return image;
  }

  // PCI 3.0: a list of 16-bit device IDs ending with 0, at the Device List Pointer from the
  // start of the PCI Data Structure. Before revision 3 that field was the (reserved) VPD pointer.
  void read_device_list(RomImage& image, RomBytes bytes) {
    const std::size_t pointer = get_le(bytes, image.pcir_offset + kPcirDeviceList, 2);
    if (image.pcir_revision < 3 || pointer == 0) return;
    for (std::size_t at_id = image.pcir_offset + pointer;; at_id += 2) {
      if (at_id + 2 > bytes.size()) {
        image.device_list.clear();
        problem(RomProblemKind::device_list, image.offset + image.pcir_offset + kPcirDeviceList,
                name(image.offset) + ": its device list runs past the image without a 0 entry");
        return;
      }
      const auto id = static_cast<std::uint16_t>(get_le(bytes, at_id, 2));
      if (id == 0) return;
      image.device_list.push_back(id);
    }
  }

  void check_x86(RomImage& image, RomBytes bytes) {
    image.initialization_size = std::size_t{bytes[kX86InitializationSize]} * kRomBlockSize;
    if (image.initialization_size == 0 || image.initialization_size > image.length) {
      problem(RomProblemKind::initialization_size, image.offset + kX86InitializationSize,
              name(image.offset) + ": x86 Initialization Size " +
                  std::to_string(image.initialization_size) + " bytes is " +
                  (image.initialization_size == 0 ? "0" : "beyond the image's length ") +
                  (image.initialization_size == 0 ? std::string() : std::to_string(image.length)));
      image.checksum = RomChecksum::mismatch;
      return;
    }
    std::uint8_t sum = 0;
    for (std::size_t i = 0; i < image.initialization_size; ++i) {
      sum = static_cast<std::uint8_t>(sum + bytes[i]);
    }
    image.byte_sum = sum;
    image.checksum = sum == 0 ? RomChecksum::ok : RomChecksum::mismatch;
    if (sum != 0) {
      problem(RomProblemKind::checksum_mismatch, image.offset,
              name(image.offset) + ": x86 checksum: its " +
                  std::to_string(image.initialization_size) + " bytes add up to " + hex(sum) +
                  ", not 0 (a BIOS skips it)");
    }
  }

  void read_efi(RomImage& image, RomBytes bytes) {
    EfiRomHeader efi;
    efi.initialization_size = static_cast<std::uint16_t>(get_le(bytes, kEfiInitializationSize, 2));
    efi.signature = get_le(bytes, kEfiSignature, 4);
    efi.subsystem = static_cast<std::uint16_t>(get_le(bytes, kEfiSubsystem, 2));
    efi.machine_type = static_cast<std::uint16_t>(get_le(bytes, kEfiMachineType, 2));
    efi.compression_type = static_cast<std::uint16_t>(get_le(bytes, kEfiCompressionType, 2));
    efi.image_offset = static_cast<std::uint16_t>(get_le(bytes, kEfiImageOffset, 2));
    image.efi = efi;
    if (efi.signature != kRomEfiSignature) {
      problem(RomProblemKind::efi_signature, image.offset + kEfiSignature,
              name(image.offset) + ": code type EFI without the EFI signature 0x0ef1 (found " +
                  hex(efi.signature) + ")");
      return;
    }
    if (efi.image_offset < kRomHeaderSize || efi.image_offset >= image.length) {
      problem(RomProblemKind::efi_image_offset, image.offset + kEfiImageOffset,
              name(image.offset) + ": EFI image offset " + at(efi.image_offset) +
                  " is outside the image's " + std::to_string(image.length) + " bytes");
    }
  }

  RomBytes rom_;
  std::optional<RomDeviceIds> device_;
  RomLayout layout_;
};

}  // namespace

std::string_view rom_code_type_name(std::uint8_t code_type) noexcept {
  switch (code_type) {
    case 0:
      return "x86";
    case 1:
      return "open-firmware";
    case 2:
      return "pa-risc";
    case 3:
      return "efi";
    default:
      return "";
  }
}

std::string_view efi_machine_name(std::uint16_t machine) noexcept {
  switch (machine) {
    case 0x014c:
      return "ia32";
    case 0x0200:
      return "ia64";
    case 0x01c2:
      return "arm";
    case 0x0ebc:
      return "ebc";
    case 0x5064:
      return "riscv64";
    case 0x6264:
      return "loongarch64";
    case 0x8664:
      return "x64";
    case 0xaa64:
      return "aarch64";
    default:
      return "";
  }
}

std::string_view efi_subsystem_name(std::uint16_t subsystem) noexcept {
  switch (subsystem) {
    case 10:
      return "application";
    case 11:
      return "boot-service-driver";
    case 12:
      return "runtime-driver";
    default:
      return "";
  }
}

std::string_view to_string(RomChecksum checksum) noexcept {
  switch (checksum) {
    case RomChecksum::not_required:
      return "not-required";
    case RomChecksum::ok:
      return "ok";
    case RomChecksum::mismatch:
      return "mismatch";
  }
  return "";
}

std::string_view to_string(RomProblemKind kind) noexcept {
  switch (kind) {
    case RomProblemKind::bad_signature:
      return "bad-signature";
    case RomProblemKind::truncated_header:
      return "truncated-header";
    case RomProblemKind::pcir_out_of_bounds:
      return "pcir-out-of-bounds";
    case RomProblemKind::bad_pcir_signature:
      return "bad-pcir-signature";
    case RomProblemKind::zero_length:
      return "zero-length";
    case RomProblemKind::past_end:
      return "past-end";
    case RomProblemKind::initialization_size:
      return "initialization-size";
    case RomProblemKind::checksum_mismatch:
      return "checksum-mismatch";
    case RomProblemKind::efi_signature:
      return "efi-signature";
    case RomProblemKind::efi_image_offset:
      return "efi-image-offset";
    case RomProblemKind::device_list:
      return "device-list";
    case RomProblemKind::id_mismatch:
      return "id-mismatch";
    case RomProblemKind::no_last_image:
      return "no-last-image";
  }
  return "";
}

bool RomImage::supports(std::uint16_t vendor, std::uint16_t device) const noexcept {
  if (vendor != vendor_id) return false;
  if (device == device_id) return true;
  for (const std::uint16_t id : device_list) {
    if (id == device) return true;
  }
  return false;
}

RomLayout parse_rom(RomBytes rom, std::optional<RomDeviceIds> device) {
  return Walker(rom, device).walk();
}

std::string describe_problems(const RomLayout& layout) {
  std::string text;
  for (const RomProblem& problem : layout.problems) {
    if (!text.empty()) text += '\n';
    text += problem.message;
  }
  if (layout.images.empty() && layout.problems.empty()) text = "the ROM holds no image";
  return text;
}

}  // namespace vfiokit::pci
