// Option ROM images built byte by byte from the PCI Firmware and UEFI specifications' layouts,
// for the parser's tests and the tests of what uses it (check's rom item, the rom command).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace vfiokit::test {

struct RomImageSpec {
  std::uint16_t vendor_id = 0x8086;
  std::uint16_t device_id = 0x10d3;
  std::uint8_t code_type = 0;  // 0 x86, 3 EFI, ...
  std::size_t blocks = 1;      // Image Length in 512-byte units
  bool last = true;
  std::uint16_t pcir_offset = 0x1c;
  std::uint8_t pcir_revision = 3;
  std::vector<std::uint16_t> device_list;  // PCI 3.0, right after the PCIR structure
  std::uint16_t efi_machine = 0x8664;
  std::uint16_t efi_subsystem = 11;
  std::uint16_t efi_compression = 0;
  std::uint16_t efi_image_offset = 0x40;
  bool fix_checksum = true;  // x86: the last byte makes the image add up to 0
};

inline void put16(std::vector<std::uint8_t>& bytes, std::size_t offset, std::uint32_t value) {
  bytes[offset] = static_cast<std::uint8_t>(value);
  bytes[offset + 1] = static_cast<std::uint8_t>(value >> 8);
}

inline std::vector<std::uint8_t> make_rom_image(const RomImageSpec& spec) {
  std::vector<std::uint8_t> image(spec.blocks * 512, 0);
  if (image.size() < 0x60) image.resize(0x60, 0);  // room for the headers when blocks is 0
  image[0] = 0x55;
  image[1] = 0xaa;
  if (spec.code_type == 3) {
    put16(image, 0x02, static_cast<std::uint32_t>(spec.blocks));
    put16(image, 0x04, 0x0ef1);
    put16(image, 0x08, spec.efi_subsystem);
    put16(image, 0x0a, spec.efi_machine);
    put16(image, 0x0c, spec.efi_compression);
    put16(image, 0x16, spec.efi_image_offset);
  } else {
    image[0x02] = static_cast<std::uint8_t>(spec.blocks);
  }
  put16(image, 0x18, spec.pcir_offset);
  const std::size_t pcir = spec.pcir_offset;
  if (pcir + 0x1c <= image.size()) {
    image[pcir] = 'P';
    image[pcir + 1] = 'C';
    image[pcir + 2] = 'I';
    image[pcir + 3] = 'R';
    put16(image, pcir + 0x04, spec.vendor_id);
    put16(image, pcir + 0x06, spec.device_id);
    put16(image, pcir + 0x08, spec.device_list.empty() ? 0 : 0x1c);
    put16(image, pcir + 0x0a, 0x1c);
    image[pcir + 0x0c] = spec.pcir_revision;
    image[pcir + 0x0f] = 0x02;  // class 02 (network), 00, 00
    put16(image, pcir + 0x10, static_cast<std::uint32_t>(spec.blocks));
    image[pcir + 0x14] = spec.code_type;
    image[pcir + 0x15] = spec.last ? 0x80 : 0x00;
    std::size_t at = pcir + 0x1c;
    for (const std::uint16_t id : spec.device_list) {
      put16(image, at, id);
      at += 2;
    }
  }
  image.resize(spec.blocks == 0 ? image.size() : spec.blocks * 512);
  if (spec.code_type == 0 && spec.fix_checksum && !image.empty()) {
    std::uint8_t sum = 0;
    for (std::size_t i = 0; i + 1 < image.size(); ++i)
      sum = static_cast<std::uint8_t>(sum + image[i]);
    image.back() = static_cast<std::uint8_t>(0x100 - sum);
  }
  return image;
}

inline std::vector<std::uint8_t> make_rom(std::initializer_list<RomImageSpec> specs) {
  std::vector<std::uint8_t> rom;
  for (const RomImageSpec& spec : specs) {
    const auto image = make_rom_image(spec);
    rom.insert(rom.end(), image.begin(), image.end());
  }
  return rom;
}

// The layout QEMU's efi-e1000e.rom has: a legacy x86 image, then a UEFI x64 driver (last).
inline std::vector<std::uint8_t> make_x86_and_efi_rom(std::uint16_t vendor = 0x8086,
                                                      std::uint16_t device = 0x10d3) {
  RomImageSpec x86;
  x86.vendor_id = vendor;
  x86.device_id = device;
  x86.blocks = 2;
  x86.last = false;
  RomImageSpec efi = x86;
  efi.code_type = 3;
  efi.blocks = 3;
  efi.last = true;
  return make_rom({x86, efi});
}

}  // namespace vfiokit::test
