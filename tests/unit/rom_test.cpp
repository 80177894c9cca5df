// The option ROM parser (pci/rom.h) on ROMs built byte by byte (tests/unit/rom_builder.h), and
// the sysfs reader on fixture files.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/unit/fixtures.h"
#include "tests/unit/rom_builder.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/pci/rom.h"

namespace vfiokit::pci {
namespace {

using test::make_rom;
using test::make_rom_image;
using test::RomImageSpec;

constexpr RomDeviceIds kE1000e{0x8086, 0x10d3};

bool has_problem(const RomLayout& layout, RomProblemKind kind) {
  return std::any_of(layout.problems.begin(), layout.problems.end(),
                     [&](const RomProblem& p) { return p.kind == kind; });
}

TEST(Rom, LegacyAndEfiImagesAsQemuShipsThem) {
  const auto rom = test::make_x86_and_efi_rom();
  const RomLayout layout = parse_rom(rom, kE1000e);
  EXPECT_TRUE(layout.valid()) << describe_problems(layout);
  ASSERT_EQ(layout.images.size(), 2u);
  EXPECT_EQ(layout.end, rom.size());

  const RomImage& x86 = layout.images[0];
  EXPECT_EQ(x86.offset, 0u);
  EXPECT_EQ(x86.length, 1024u);
  EXPECT_EQ(x86.code_type, 0);
  EXPECT_EQ(rom_code_type_name(x86.code_type), "x86");
  EXPECT_FALSE(x86.last);
  EXPECT_EQ(x86.vendor_id, 0x8086);
  EXPECT_EQ(x86.device_id, 0x10d3);
  EXPECT_EQ(x86.class_code, 0x020000u);
  EXPECT_EQ(x86.pcir_revision, 3);
  EXPECT_EQ(x86.initialization_size, 1024u);
  EXPECT_EQ(x86.checksum, RomChecksum::ok);
  EXPECT_FALSE(x86.efi.has_value());

  const RomImage& efi = layout.images[1];
  EXPECT_EQ(efi.offset, 1024u);
  EXPECT_EQ(efi.length, 1536u);
  EXPECT_EQ(rom_code_type_name(efi.code_type), "efi");
  EXPECT_TRUE(efi.last);
  ASSERT_TRUE(efi.efi.has_value());
  EXPECT_EQ(efi.efi->signature, kRomEfiSignature);
  EXPECT_EQ(efi.efi->machine_type, 0x8664);
  EXPECT_EQ(efi_machine_name(efi.efi->machine_type), "x64");
  EXPECT_EQ(efi_subsystem_name(efi.efi->subsystem), "boot-service-driver");
  EXPECT_EQ(efi.efi->compression_type, 0);
  EXPECT_EQ(efi.efi->initialization_size, 3);
  EXPECT_EQ(efi.efi->image_offset, 0x40);
  // UEFI images carry no checksum: nothing is required of their byte sum.
  EXPECT_EQ(efi.checksum, RomChecksum::not_required);
}

TEST(Rom, WithoutADeviceNoIdIsChecked) {
  const auto rom = test::make_x86_and_efi_rom(0x10de, 0x2204);
  EXPECT_TRUE(parse_rom(rom).valid());
  const RomLayout layout = parse_rom(rom, kE1000e);
  EXPECT_FALSE(layout.valid());
  ASSERT_EQ(layout.problems.size(), 2u);  // one per image
  EXPECT_EQ(layout.problems[0].kind, RomProblemKind::id_mismatch);
  EXPECT_NE(layout.problems[0].message.find("10de:2204"), std::string::npos);
  EXPECT_NE(layout.problems[0].message.find("8086:10d3"), std::string::npos);
  EXPECT_EQ(layout.images.size(), 2u);  // a mismatch does not stop the walk
}

TEST(Rom, Pci30DeviceListCoversOtherDevices) {
  RomImageSpec spec;
  spec.device_id = 0x10d2;
  spec.device_list = {0x10d1, 0x10d3};
  const auto rom = make_rom_image(spec);
  const RomLayout layout = parse_rom(rom, kE1000e);
  EXPECT_TRUE(layout.valid()) << describe_problems(layout);
  ASSERT_EQ(layout.images.size(), 1u);
  EXPECT_EQ(layout.images[0].device_list, (std::vector<std::uint16_t>{0x10d1, 0x10d3}));
  EXPECT_TRUE(parse_rom(rom, RomDeviceIds{0x8086, 0x10d1}).valid());
  EXPECT_TRUE(parse_rom(rom, RomDeviceIds{0x8086, 0x10d2}).valid());
  EXPECT_TRUE(
      has_problem(parse_rom(rom, RomDeviceIds{0x8086, 0x10d4}), RomProblemKind::id_mismatch));
  // Another vendor never matches, whatever the device list says.
  EXPECT_TRUE(
      has_problem(parse_rom(rom, RomDeviceIds{0x10de, 0x10d3}), RomProblemKind::id_mismatch));
}

TEST(Rom, BeforePci30TheDeviceListPointerIsNotOne) {
  RomImageSpec spec;
  spec.pcir_revision = 0;
  spec.device_id = 0x10d2;
  spec.device_list = {0x10d3};  // the pointer is set, but revision 0 reserves that field
  const RomLayout layout = parse_rom(make_rom_image(spec), kE1000e);
  EXPECT_TRUE(layout.images.at(0).device_list.empty());
  EXPECT_TRUE(has_problem(layout, RomProblemKind::id_mismatch));
}

TEST(Rom, UnterminatedDeviceList) {
  RomImageSpec spec;
  spec.device_list = {0x10d3};
  auto rom = make_rom_image(spec);
  // Fill from the list to the end with IDs, so no 0 ends it (the checksum byte is the last).
  for (std::size_t i = 0x1c + 0x1c; i + 1 < rom.size(); i += 2) test::put16(rom, i, 0x1111);
  rom.back() = 0x11;
  const RomLayout layout = parse_rom(rom, kE1000e);
  EXPECT_TRUE(has_problem(layout, RomProblemKind::device_list));
  EXPECT_TRUE(layout.images.at(0).device_list.empty());
}

TEST(Rom, X86ChecksumCoversTheInitializationSize) {
  RomImageSpec spec;
  spec.blocks = 2;
  auto rom = make_rom_image(spec);
  EXPECT_EQ(parse_rom(rom).images.at(0).checksum, RomChecksum::ok);
  rom[0x100] ^= 0x01;
  const RomLayout bad = parse_rom(rom);
  EXPECT_EQ(bad.images.at(0).checksum, RomChecksum::mismatch);
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_EQ(bad.problems[0].kind, RomProblemKind::checksum_mismatch);
  EXPECT_EQ(bad.problems[0].offset, 0u);
  EXPECT_EQ(bad.images.at(0).byte_sum, 0x01);
  EXPECT_NE(bad.problems[0].message.find("0x1"), std::string::npos) << bad.problems[0].message;

  // Bytes past the Initialization Size are not the checksum's (PCI 3.0 images may be longer
  // than what the BIOS copies and checks).
  auto shorter = make_rom_image(spec);
  shorter[2] = 1;  // Initialization Size: the first 512 bytes
  std::uint8_t sum = 0;
  for (std::size_t i = 0; i < 512; ++i) sum = static_cast<std::uint8_t>(sum + shorter[i]);
  shorter[0x10] = static_cast<std::uint8_t>(shorter[0x10] - sum);  // a reserved header byte
  shorter[700] ^= 0xff;
  const RomLayout partial = parse_rom(shorter);
  EXPECT_TRUE(partial.valid()) << describe_problems(partial);
  EXPECT_EQ(partial.images.at(0).initialization_size, 512u);
}

TEST(Rom, X86InitializationSizeZeroOrBeyondTheImage) {
  RomImageSpec spec;
  auto rom = make_rom_image(spec);
  rom[2] = 0;
  EXPECT_TRUE(has_problem(parse_rom(rom), RomProblemKind::initialization_size));
  rom[2] = 2;  // the image is one block
  const RomLayout layout = parse_rom(rom);
  EXPECT_TRUE(has_problem(layout, RomProblemKind::initialization_size));
  EXPECT_EQ(layout.images.at(0).checksum, RomChecksum::mismatch);
}

TEST(Rom, EfiImagesNeedNoChecksumButTheirSignature) {
  RomImageSpec spec;
  spec.code_type = 3;
  auto rom = make_rom_image(spec);
  rom[0x100] = 0x5a;  // the byte sum is anything: UEFI defines no checksum
  EXPECT_TRUE(parse_rom(rom).valid());
  rom[4] = 0xf2;
  const RomLayout layout = parse_rom(rom);
  ASSERT_EQ(layout.problems.size(), 1u);
  EXPECT_EQ(layout.problems[0].kind, RomProblemKind::efi_signature);
  EXPECT_EQ(layout.problems[0].offset, 4u);
}

TEST(Rom, EfiImageOffsetOutsideTheImage) {
  RomImageSpec spec;
  spec.code_type = 3;
  spec.efi_image_offset = 512;  // the image is 512 bytes
  EXPECT_TRUE(has_problem(parse_rom(make_rom_image(spec)), RomProblemKind::efi_image_offset));
  spec.efi_image_offset = 0x10;  // inside the ROM header
  EXPECT_TRUE(has_problem(parse_rom(make_rom_image(spec)), RomProblemKind::efi_image_offset));
}

TEST(Rom, OtherCodeTypesAreListedWithoutChecks) {
  for (const int type : {1, 2, 0x70}) {
    RomImageSpec spec;
    spec.code_type = static_cast<std::uint8_t>(type);
    const RomLayout layout = parse_rom(make_rom_image(spec));
    EXPECT_TRUE(layout.valid()) << type;
    EXPECT_EQ(layout.images.at(0).checksum, RomChecksum::not_required);
  }
  EXPECT_EQ(rom_code_type_name(1), "open-firmware");
  EXPECT_EQ(rom_code_type_name(2), "pa-risc");
  EXPECT_EQ(rom_code_type_name(0x70), "");
}

TEST(Rom, EmptyOrErasedRom) {
  const RomLayout empty = parse_rom({});
  EXPECT_FALSE(empty.valid());
  ASSERT_EQ(empty.problems.size(), 1u);
  EXPECT_EQ(empty.problems[0].kind, RomProblemKind::bad_signature);
  const std::vector<std::uint8_t> erased(4096, 0xff);
  const RomLayout ff = parse_rom(erased);
  EXPECT_TRUE(ff.images.empty());
  EXPECT_EQ(ff.end, 0u);
  EXPECT_EQ(ff.problems.at(0).kind, RomProblemKind::bad_signature);
  const std::vector<std::uint8_t> one{0x55};
  EXPECT_EQ(parse_rom(one).problems.at(0).kind, RomProblemKind::bad_signature);
}

TEST(Rom, TruncatedHeader) {
  std::vector<std::uint8_t> rom(0x19, 0);
  rom[0] = 0x55;
  rom[1] = 0xaa;
  EXPECT_EQ(parse_rom(rom).problems.at(0).kind, RomProblemKind::truncated_header);
}

TEST(Rom, PcirPointerOutOfBounds) {
  auto rom = make_rom_image({});
  test::put16(rom, 0x18, 0x0010);  // into the header itself
  EXPECT_EQ(parse_rom(rom).problems.at(0).kind, RomProblemKind::pcir_out_of_bounds);
  test::put16(rom, 0x18, 0xfff0);  // past the bytes
  EXPECT_EQ(parse_rom(rom).problems.at(0).kind, RomProblemKind::pcir_out_of_bounds);
  test::put16(rom, 0x18, static_cast<std::uint16_t>(rom.size() - 0x17));  // structure cut off
  EXPECT_EQ(parse_rom(rom).problems.at(0).kind, RomProblemKind::pcir_out_of_bounds);
}

TEST(Rom, PcirPastItsOwnImage) {
  // Image 0 is one block but its PCIR sits in the next image's bytes.
  RomImageSpec first;
  first.last = false;
  first.pcir_offset = 0x200 + 0x1c;  // where image 1's PCIR is
  auto rom = make_rom({first, RomImageSpec{}});
  const RomLayout layout = parse_rom(rom);
  ASSERT_EQ(layout.problems.size(), 1u);
  EXPECT_EQ(layout.problems[0].kind, RomProblemKind::pcir_out_of_bounds);
  EXPECT_TRUE(layout.images.empty());
}

TEST(Rom, BadPcirSignature) {
  auto rom = make_rom_image({});
  rom[0x1c + 3] = 'X';
  const RomLayout layout = parse_rom(rom);
  EXPECT_EQ(layout.problems.at(0).kind, RomProblemKind::bad_pcir_signature);
  EXPECT_EQ(layout.problems.at(0).offset, 0x1cu);
}

TEST(Rom, ZeroLengthWouldLoop) {
  RomImageSpec spec;
  spec.blocks = 0;
  const RomLayout layout = parse_rom(make_rom_image(spec));
  ASSERT_EQ(layout.problems.size(), 1u);
  EXPECT_EQ(layout.problems[0].kind, RomProblemKind::zero_length);
  EXPECT_TRUE(layout.images.empty());
}

TEST(Rom, ImagePastTheData) {
  RomImageSpec spec;
  spec.blocks = 4;
  auto rom = make_rom_image(spec);
  rom.resize(3 * 512);  // a read cut short
  const RomLayout layout = parse_rom(rom);
  EXPECT_EQ(layout.problems.at(0).kind, RomProblemKind::past_end);
  EXPECT_TRUE(layout.images.empty());
}

TEST(Rom, NoLastImageFlag) {
  RomImageSpec spec;
  spec.last = false;
  const RomLayout layout = parse_rom(make_rom({spec, spec}));
  EXPECT_EQ(layout.images.size(), 2u);
  ASSERT_EQ(layout.problems.size(), 1u);
  EXPECT_EQ(layout.problems[0].kind, RomProblemKind::no_last_image);
  EXPECT_EQ(layout.end, 1024u);
}

TEST(Rom, GarbageAfterANonLastImage) {
  RomImageSpec spec;
  spec.last = false;
  auto rom = make_rom_image(spec);
  rom.resize(rom.size() + 512, 0xff);  // erased flash where image 1 should be
  const RomLayout layout = parse_rom(rom);
  EXPECT_EQ(layout.images.size(), 1u);
  EXPECT_EQ(layout.problems.at(0).kind, RomProblemKind::bad_signature);
  EXPECT_EQ(layout.problems.at(0).offset, 512u);
  EXPECT_NE(layout.problems.at(0).message.find("image 1 at 0x200"), std::string::npos);
}

TEST(Rom, BytesAfterTheLastImageAreNotWalked) {
  // VFIO's ROM region is as large as the ROM BAR; past the images it reads 0xff.
  auto rom = test::make_x86_and_efi_rom();
  const std::size_t images = rom.size();
  rom.resize(256 << 10, 0xff);
  const RomLayout layout = parse_rom(rom, kE1000e);
  EXPECT_TRUE(layout.valid());
  EXPECT_EQ(layout.end, images);
}

TEST(Rom, EveryTruncationIsAProblemNeverACrash) {
  const auto rom = test::make_x86_and_efi_rom();
  for (std::size_t size = 0; size < rom.size(); ++size) {
    const RomLayout layout = parse_rom(std::span(rom).first(size), kE1000e);
    EXPECT_FALSE(layout.valid()) << size;
    EXPECT_FALSE(layout.problems.empty()) << size;
    EXPECT_LE(layout.end, size);
  }
}

TEST(Rom, NamesForEveryProblemKind) {
  for (int kind = 0; kind <= static_cast<int>(RomProblemKind::no_last_image); ++kind) {
    EXPECT_FALSE(to_string(static_cast<RomProblemKind>(kind)).empty()) << kind;
  }
  EXPECT_EQ(to_string(RomChecksum::not_required), "not-required");
  EXPECT_EQ(efi_machine_name(0x014c), "ia32");
  EXPECT_EQ(efi_machine_name(0xaa64), "aarch64");
  EXPECT_EQ(efi_machine_name(0x0ebc), "ebc");
  EXPECT_EQ(efi_machine_name(0x0200), "ia64");
  EXPECT_EQ(efi_machine_name(0x1234), "");
}

TEST(RomSysfs, ReadsAFileThatReadsAtOnceWithoutWritingIt) {
  test::FixtureCopy copy(test::fixture("sysfs/no-iommu"));
  const auto bdf = *parse_bdf("0000:00:1f.6");
  const auto rom = test::make_x86_and_efi_rom();
  const auto path = copy.root() / "sys/bus/pci/devices/0000:00:1f.6/rom";
  write_file_durable(path, std::string(rom.begin(), rom.end()), 0600);
  EXPECT_EQ(read_sysfs_rom(copy.paths(), bdf), rom);
  EXPECT_EQ(read_bytes(path, 1 << 20), rom);  // never enabled, so never written
}

TEST(RomSysfs, NoRomAttributeIsAnErrorWithTheReason) {
  const auto paths = HostPaths::under(test::fixture("sysfs/no-iommu"));
  try {
    read_sysfs_rom(paths, *parse_bdf("0000:00:1f.6"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.errno_value(), ENOENT);
    EXPECT_EQ(e.context_value("bdf"), "0000:00:1f.6");
    EXPECT_NE(e.hint().find("no rom attribute"), std::string::npos);
  }
}

}  // namespace
}  // namespace vfiokit::pci
