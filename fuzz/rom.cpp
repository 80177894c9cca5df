// Option ROM bytes as a device's ROM BAR, sysfs or a romfile may hold them: parse_rom with and
// without the device's IDs.
//
// Invariants: it never throws; images lie wholly inside the bytes, in order, without overlap,
// each starting with 0x55 0xAA at a PCIR that lies inside it; only the last image walked may have
// the last-image flag; end is the last image's end; a valid layout has images and no problems;
// only x86 images have a checksum, and it is ok exactly when their Initialization Size bytes add
// up to 0; EFI images have their header; every problem has a name and a message and an offset
// inside (or at the end of) the bytes; with IDs, an image that does not support them is a
// problem, and the walk finds the same images either way.
#include <cstdint>

#include "fuzz/fuzz.h"
#include "vfiokit/pci/rom.h"

namespace vfiokit::pci {
namespace {

void check_layout(RomBytes rom, const RomLayout& layout) {
  std::size_t next = 0;
  for (std::size_t i = 0; i < layout.images.size(); ++i) {
    const RomImage& image = layout.images[i];
    FUZZ_CHECK(image.offset == next);
    FUZZ_CHECK(image.length > 0 && image.length % kRomBlockSize == 0);
    FUZZ_CHECK(image.offset + image.length <= rom.size());
    FUZZ_CHECK(rom[image.offset] == 0x55 && rom[image.offset + 1] == 0xaa);
    FUZZ_CHECK(image.pcir_offset >= kRomHeaderSize);
    FUZZ_CHECK(image.pcir_offset + kPcirMinimumLength <= image.length);
    FUZZ_CHECK(rom[image.offset + image.pcir_offset] == 'P');
    FUZZ_CHECK(image.last == (i + 1 == layout.images.size() && image.last));
    if (i + 1 < layout.images.size()) FUZZ_CHECK(!image.last);
    if (image.code_type == static_cast<std::uint8_t>(RomCodeType::x86)) {
      FUZZ_CHECK(image.checksum != RomChecksum::not_required);
      if (image.initialization_size > 0 && image.initialization_size <= image.length) {
        std::uint8_t sum = 0;
        for (std::size_t b = 0; b < image.initialization_size; ++b) {
          sum = static_cast<std::uint8_t>(sum + rom[image.offset + b]);
        }
        FUZZ_CHECK((image.checksum == RomChecksum::ok) == (sum == 0));
      } else {
        FUZZ_CHECK(image.checksum == RomChecksum::mismatch);
      }
    } else {
      FUZZ_CHECK(image.checksum == RomChecksum::not_required);
    }
    FUZZ_CHECK(image.efi.has_value() ==
               (image.code_type == static_cast<std::uint8_t>(RomCodeType::efi)));
    if (!image.device_list.empty()) FUZZ_CHECK(image.pcir_revision >= 3);
    next = image.offset + image.length;
  }
  FUZZ_CHECK(layout.end == next);
  FUZZ_CHECK(layout.valid() == (layout.problems.empty() && !layout.images.empty()));
  if (layout.images.empty()) FUZZ_CHECK(!layout.problems.empty());
  for (const RomProblem& problem : layout.problems) {
    FUZZ_CHECK(!to_string(problem.kind).empty());
    FUZZ_CHECK(!problem.message.empty());
    FUZZ_CHECK(problem.offset <= rom.size());
  }
  FUZZ_CHECK(describe_problems(layout).empty() == layout.valid());
}

}  // namespace
}  // namespace vfiokit::pci

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::pci;
  if (size < 4) return 0;
  const RomDeviceIds device{static_cast<std::uint16_t>(bytes[0] | bytes[1] << 8),
                            static_cast<std::uint16_t>(bytes[2] | bytes[3] << 8)};
  const RomBytes rom(bytes + 4, size - 4);
  const RomLayout plain = parse_rom(rom);
  check_layout(rom, plain);
  const RomLayout matched = parse_rom(rom, device);
  check_layout(rom, matched);
  FUZZ_CHECK(plain.images.size() == matched.images.size());
  std::size_t mismatches = 0;
  for (const RomImage& image : matched.images) {
    if (!image.supports(device.vendor_id, device.device_id)) ++mismatches;
  }
  std::size_t reported = 0;
  for (const RomProblem& problem : matched.problems) {
    if (problem.kind == RomProblemKind::id_mismatch) ++reported;
  }
  FUZZ_CHECK(mismatches == reported);
  FUZZ_CHECK(matched.problems.size() == plain.problems.size() + reported);
  for (const RomImage& image : matched.images) {
    rom_code_type_name(image.code_type);
    if (image.efi) {
      efi_machine_name(image.efi->machine_type);
      efi_subsystem_name(image.efi->subsystem);
    }
  }
  return 0;
}
