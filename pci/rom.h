// PCI option ROMs (expansion ROMs), parsed from bytes: every image of the ROM, its PCI Data
// Structure and, for UEFI images, the EFI header; and what is wrong with it. Pure functions over
// spans that never throw on their input: problems are values. Layouts follow the PCI Firmware
// Specification 3.x (chapter 5, "PCI Expansion ROMs") and the UEFI Specification ("PCI Option
// ROMs"); docs/rom.md says what each check rests on.
//
// Reading a ROM from sysfs lives here too (read_sysfs_rom); through VFIO's ROM region it is
// VfioDevice::read_rom (vfio/device.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::pci {

using RomBytes = std::span<const std::uint8_t>;

inline constexpr std::uint16_t kRomSignature = 0xaa55;      // bytes 0x55 0xAA
inline constexpr std::uint32_t kRomEfiSignature = 0x0ef1;   // EFI header, offset 4
inline constexpr std::size_t kRomBlockSize = 512;           // image length unit
inline constexpr std::size_t kRomPcirPointerOffset = 0x18;  // 16-bit offset of "PCIR"
inline constexpr std::size_t kRomHeaderSize = 0x1a;         // through the PCIR pointer
inline constexpr std::size_t kPcirMinimumLength = 0x18;     // PCI 2.x; 3.0 adds 4 bytes
inline constexpr std::uint8_t kPcirLastImage = 0x80;        // Indicator, bit 7

// PCI Data Structure, Code Type.
enum class RomCodeType : std::uint8_t {
  x86 = 0,            // Intel x86, PC-AT compatible (legacy BIOS)
  open_firmware = 1,  // Open Firmware (FCode)
  pa_risc = 2,        // Hewlett-Packard PA-RISC
  efi = 3,            // UEFI
};
// "x86", "open-firmware", "pa-risc", "efi", or "" for a value the specifications do not assign.
std::string_view rom_code_type_name(std::uint8_t code_type) noexcept;
// PE/COFF machine types a UEFI image is built for: "ia32", "x64", "aarch64", "ia64", "ebc",
// "arm", "riscv64", "loongarch64"; "" for others.
std::string_view efi_machine_name(std::uint16_t machine) noexcept;
// "application", "boot-service-driver", "runtime-driver"; "" for others.
std::string_view efi_subsystem_name(std::uint16_t subsystem) noexcept;

// The UEFI image header (code type 3), from offset 2 of the image.
struct EfiRomHeader {
  std::uint16_t initialization_size = 0;  // 512-byte units, the header included
  std::uint32_t signature = 0;            // 0x0EF1 when valid
  std::uint16_t subsystem = 0;            // PE subsystem (0xB boot service driver...)
  std::uint16_t machine_type = 0;         // PE machine (0x8664 x64...)
  std::uint16_t compression_type = 0;     // 0 none, 1 the UEFI compression algorithm
  std::uint16_t image_offset = 0;         // where the PE/COFF image starts, in the ROM image
};

// How an image's checksum stands. Only x86 (PC-AT) images carry one: their bytes over the
// Initialization Size (header byte 2, in 512-byte units) add up to 0 mod 256, and a legacy BIOS
// refuses an image whose do not. UEFI images have no checksum (their integrity is the PE image's
// signature, checked by Secure Boot); nor do the other code types.
enum class RomChecksum {
  not_required,
  ok,
  mismatch,
};
std::string_view to_string(RomChecksum checksum) noexcept;

struct RomImage {
  std::size_t offset = 0;         // in the ROM
  std::size_t length = 0;         // Image Length (PCIR 0x10) in bytes
  std::uint16_t pcir_offset = 0;  // in the image
  std::uint16_t vendor_id = 0;
  std::uint16_t device_id = 0;
  // PCI 3.0 (PCIR revision 3 or more): other device IDs the image supports, from the Device
  // List Pointer (PCIR 0x08); empty when there is none.
  std::vector<std::uint16_t> device_list;
  std::uint8_t pcir_revision = 0;
  std::uint16_t pcir_length = 0;
  std::uint32_t class_code = 0;
  std::uint16_t code_revision = 0;
  std::uint8_t code_type = 0;  // RomCodeType value, or another
  bool last = false;           // Indicator bit 7
  // x86: the Initialization Size (byte 2) in bytes, which the checksum covers.
  std::size_t initialization_size = 0;
  std::optional<EfiRomHeader> efi;  // code type 3 only
  RomChecksum checksum = RomChecksum::not_required;
  std::uint8_t byte_sum = 0;  // the sum its checksum checks (x86), for the message

  // True when the image is for this vendor:device (its own IDs or its device list).
  [[nodiscard]] bool supports(std::uint16_t vendor, std::uint16_t device) const noexcept;
};

enum class RomProblemKind {
  bad_signature,        // no 0x55 0xAA where an image starts
  truncated_header,     // the header (through the PCIR pointer) is cut off
  pcir_out_of_bounds,   // the PCIR pointer points outside the image or the ROM
  bad_pcir_signature,   // no "PCIR" there
  zero_length,          // Image Length 0: the walk cannot advance
  past_end,             // the image reaches past the ROM's bytes
  initialization_size,  // x86 Initialization Size 0 or beyond the image
  checksum_mismatch,    // x86 bytes do not add up to 0
  efi_signature,        // code type 3 without the 0x0EF1 signature
  efi_image_offset,     // code type 3 whose EFI image offset lies outside the image
  device_list,          // PCI 3.0 device list outside the image or unterminated
  id_mismatch,          // the image is for another vendor:device
  no_last_image,        // the ROM ends before an image has the last-image flag
};
// "bad-signature", "pcir-out-of-bounds", ...: the name output and JSON use.
std::string_view to_string(RomProblemKind kind) noexcept;

struct RomProblem {
  RomProblemKind kind = RomProblemKind::bad_signature;
  std::size_t offset = 0;  // where in the ROM (the image's start, or the field's)
  std::string message;     // says what was found and what was expected
};

struct RomLayout {
  std::vector<RomImage> images;      // in ROM order, each whole inside the bytes
  std::vector<RomProblem> problems;  // empty: a valid ROM
  // Bytes up to the end of the last image walked: what a romfile= copy needs. 0 when none.
  std::size_t end = 0;

  [[nodiscard]] bool valid() const noexcept { return problems.empty() && !images.empty(); }
};

struct RomDeviceIds {
  std::uint16_t vendor_id = 0;
  std::uint16_t device_id = 0;
};

// Walks every image from offset 0 until one has the last-image flag, one is broken, or the bytes
// end. With `device`, an image for another vendor:device (neither its IDs nor its PCI 3.0 device
// list) is an id_mismatch problem. Never throws.
RomLayout parse_rom(RomBytes rom, std::optional<RomDeviceIds> device = std::nullopt);

// One line per problem ("image 1 at 0x2000: ..."), for an error's message or a check.
std::string describe_problems(const RomLayout& layout);

// The device's option ROM through sysfs `rom`, up to `max_bytes`. The kernel refuses reads until
// "1" is written to the attribute, and reading needs root (the file is 0600): when a plain read is
// refused with EINVAL, this enables it, reads, and writes "0\n" again afterwards whatever
// happened (a file that reads at once, as a fixture's does, is never written). Throws Error:
// EACCES (hint: run as root), EIO (the kernel found no valid 0x55AA ROM), ENOENT (no ROM BAR).
std::vector<std::uint8_t> read_sysfs_rom(const HostPaths& paths, const Bdf& bdf,
                                         std::size_t max_bytes = std::size_t{16} << 20);

}  // namespace vfiokit::pci
